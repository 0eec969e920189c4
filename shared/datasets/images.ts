import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';
import { createRng, permutation } from '../random.js';
import { MNIST_SHAPE, pixelCount, type ImageSet, type ImageShape } from './types.js';

/** Operations on image sets that do not care where the images came from. */

/** An image set from 8-bit pixels (the scaled copy is made here). */
export function fromPixels(pixels: Uint8Array, labels: Int32Array, shape: ImageShape): ImageSet {
  const count = labels.length;
  if (pixels.length !== count * pixelCount(shape)) {
    throw new TransferlabError('dataset_corrupt', `${pixels.length} pixel values for ${count} images of ${shape.join('×')}`, 500);
  }
  const images = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) images[i] = pixels[i] / 255;
  return { pixels, images, labels, count, shape };
}

/** A subset by index, copied. */
export function subset(ds: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = pixelCount(ds.shape);
  const n = indices.length;
  const pixels = new Uint8Array(n * size);
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    pixels.set(ds.pixels.subarray(j * size, (j + 1) * size), i * size);
    images.set(ds.images.subarray(j * size, (j + 1) * size), i * size);
    labels[i] = ds.labels[j];
  }
  return { pixels, images, labels, count: n, shape: ds.shape };
}

/** Images as an NHWC tensor [N, H, W, C]. */
export function imagesTensor(images: Float32Array, count: number, shape: ImageShape = MNIST_SHAPE): tf.Tensor4D {
  return tf.tensor4d(images.subarray(0, count * pixelCount(shape)), [count, shape[0], shape[1], shape[2]]);
}

/**
 * The adversary's split of a dataset's test images (the victim trains on the training part only):
 * a seeded permutation, the seed set first, the evaluation set after it, disjoint.
 */
export function adversarySplit(seed: number, seedSize: number, evalSize: number, testCount = 10_000): { seedSet: Int32Array; evalSet: Int32Array } {
  if (seedSize + evalSize > testCount) {
    throw new TransferlabError(
      'invalid_split',
      `seed set (${seedSize}) + evaluation set (${evalSize}) exceed the ${testCount} test images; lower --seed-size or --eval-size (query-attack: --images)`,
    );
  }
  const p = permutation(testCount, createRng(seed));
  return { seedSet: p.slice(0, seedSize), evalSet: p.slice(seedSize, seedSize + evalSize) };
}

/** Round [0,1] floats to the nearest 8-bit pixel value: what a uint8 wire format carries. */
export function toPixels(images: Float32Array): Uint8Array {
  const out = new Uint8Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, images[i])) * 255);
  return out;
}

/** Images as the victim sees them after 8-bit quantisation. */
export function quantise(images: Float32Array): Float32Array {
  const px = toPixels(images);
  const out = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) out[i] = px[i] / 255;
  return out;
}
