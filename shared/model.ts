import * as tf from '@tensorflow/tfjs';
import { IMAGE_SIZE, imagesTensor } from './mnist.js';

/**
 * A differentiable classifier, as foolbox sees one: input bounds plus a function to logits.
 * Attacks take gradients through `logits`, never through a softmax, so that confidently
 * classified images still yield a usable gradient.
 */
export interface Model {
  readonly bounds: readonly [number, number];
  /** x: [N, 28, 28, 1] in `bounds` → logits [N, classes]. Must be differentiable (no dataSync inside). */
  logits(x: tf.Tensor4D): tf.Tensor2D;
}

/** Wrap a layers model whose last layer emits logits (softmax lives in the loss). */
export function fromLayers(model: tf.LayersModel): Model {
  return {
    bounds: [0, 1],
    logits: (x) => model.apply(x, { training: false }) as tf.Tensor2D,
  };
}

/** Top-1 labels of a batch, synchronously read back. Batches internally to bound memory. */
export function predictLabels(model: Model, x: tf.Tensor4D, batchSize = 1000): Int32Array {
  const n = x.shape[0];
  const out = new Int32Array(n);
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const labels = tf.tidy(() => model.logits(x.slice([start, 0, 0, 0], [size, -1, -1, -1])).argMax(1));
    out.set(labels.dataSync() as Int32Array, start);
    labels.dispose();
  }
  return out;
}

/** Top-1 labels of count×784 images in [0,1]: the tensor is made and released here. */
export function labelImages(model: Model, images: Float32Array, count: number, batchSize = 1000): Int32Array {
  const x = imagesTensor(images.subarray(0, count * IMAGE_SIZE), count);
  try {
    return predictLabels(model, x, batchSize);
  } finally {
    x.dispose();
  }
}
