/**
 * The one shape every image dataset takes, whatever its source: 8-bit pixels (what a client sends),
 * the same scaled to [0, 1] (what models see), labels, and the per-image shape H×W×C, row-major HWC.
 */
export type ImageShape = readonly [height: number, width: number, channels: number];

/** The input shape of the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST). */
export const MNIST_SHAPE: ImageShape = [28, 28, 1];

/** The MNIST image size (28 × 28 × 1) and class count, for code that serves MNIST only. */
export const IMAGE_SIZE = 28 * 28;
export const CLASSES = 10;

/** One split: `count` images of `shape`. */
export interface ImageSet {
  /** Row-major 8-bit pixels, count × H·W·C: the exact bytes a client can send. */
  pixels: Uint8Array;
  /** Pixels scaled to [0, 1]. */
  images: Float32Array;
  labels: Int32Array;
  count: number;
  shape: ImageShape;
}

export type DatasetKind = 'builtin' | 'idx-folder' | 'image-folder';

export interface Dataset {
  /** What results and /v1/info call it: the built-in name, or the folder's last path component. */
  name: string;
  kind: DatasetKind;
  /** Where the files were read from (absolute). */
  source: string;
  shape: ImageShape;
  classes: number;
  classNames: string[];
  /** What the victim trains on; the attacker never sees it. */
  train: ImageSet;
  /** The attacker's seed and evaluation images come from here. */
  test: ImageSet;
  /** Each split's image count when it is known without reading the split (a built-in set's fixed counts). */
  counts?: { train: number; test: number };
}

/** What results.json and model metadata record about a dataset (no pixels). */
export interface DatasetSummary {
  name: string;
  kind: DatasetKind;
  source: string;
  shape: [number, number, number];
  classes: number;
  classNames: string[];
  trainImages: number;
  testImages: number;
}

export const pixelCount = (shape: ImageShape): number => shape[0] * shape[1] * shape[2];

export function summarise(ds: Dataset): DatasetSummary {
  return {
    name: ds.name,
    kind: ds.kind,
    source: ds.source,
    shape: [ds.shape[0], ds.shape[1], ds.shape[2]],
    classes: ds.classes,
    classNames: ds.classNames,
    // A built-in set knows its counts: reading its 60,000 training images only to count them cost a campaign about a second.
    trainImages: ds.counts?.train ?? ds.train.count,
    testImages: ds.counts?.test ?? ds.test.count,
  };
}
