import { MNIST_FIX, mnistDir, readBuiltinSplit, type Split } from './datasets/builtin.js';
import { loadDataset } from './datasets/index.js';
import type { ImageSet } from './datasets/types.js';

/**
 * MNIST, the default dataset, by split (the loader lives in datasets/builtin.ts; this keeps the
 * short names the MNIST-only parts of the project use). Generic image-set helpers are re-exported.
 */
export { adversarySplit, imagesTensor, quantise, subset, toPixels } from './datasets/images.js';
export { mnistDir };
export type { Split };
export type Dataset = ImageSet;

/** The MNIST image size (28 × 28 × 1) and class count, for code that serves MNIST only. */
export const IMAGE_SIZE = 28 * 28;
export const CLASSES = 10;

const cache = new Map<string, ImageSet>();

/** Load one split, checking magic numbers and sizes. Cached per process. */
export function loadMnist(split: Split, dir?: string): ImageSet {
  if (dir === undefined) return loadDataset('mnist')[split];
  const key = `${dir}:${split}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const ds = readBuiltinSplit(dir, split, MNIST_FIX);
  cache.set(key, ds);
  return ds;
}
