import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TransferlabError } from '../errors.js';
import { fromPixels } from './images.js';
import type { Dataset, ImageSet, ImageShape } from './types.js';

/**
 * IDX files (LeCun's MNIST format, also used by Fashion-MNIST, KMNIST and EMNIST): a 4-byte magic
 * number (0, 0, type code, number of dimensions), one big-endian uint32 per dimension, then the data.
 * Only unsigned-byte data (type 0x08) is image data here. Files may be gzip-compressed.
 */
const UNSIGNED_BYTE = 0x08;
const GZIP = [0x1f, 0x8b];

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export type Corrupt = (why: string) => TransferlabError;

const corruptIn = (path: string, fix: string): Corrupt => (why) =>
  new TransferlabError('dataset_corrupt', `IDX file ${path} is not usable (${why})${fix ? `; ${fix}` : ''}`, 400);

/** Parse one IDX buffer (gunzipped first when it starts with the gzip magic), checking magic and sizes. */
export function parseIdx(raw: Uint8Array, corrupt: Corrupt): IdxArray {
  let buf: Buffer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (buf[0] === GZIP[0] && buf[1] === GZIP[1]) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw corrupt(`gzip data does not decompress: ${(e as Error).message}`);
    }
  }
  if (buf.length < 4) throw corrupt('shorter than its 4-byte magic number');
  const magic = `magic number 0x${buf.readUInt32BE(0).toString(16).padStart(8, '0')}`;
  if (buf[0] !== 0 || buf[1] !== 0) throw corrupt(`${magic} does not start with two zero bytes`);
  if (buf[2] !== UNSIGNED_BYTE) throw corrupt(`${magic}: data type 0x${buf[2].toString(16)}; only unsigned bytes (0x08) are supported`);
  const rank = buf[3];
  if (rank < 1 || rank > 4) throw corrupt(`${magic}: ${rank} dimensions; expected 1 (labels) to 4 (images)`);
  const header = 4 + 4 * rank;
  if (buf.length < header) throw corrupt('shorter than its header');
  const dims = Array.from({ length: rank }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== header + size) throw corrupt(`${buf.length - header} data bytes, expected ${size} for ${dims.join('×')}`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, size) };
}

export function readIdxFile(path: string, fix = ''): IdxArray {
  if (!existsSync(path)) throw new TransferlabError('dataset_missing', `IDX file not found: ${path}${fix ? `; ${fix}` : ''}`, 400);
  return parseIdx(readFileSync(path), corruptIn(path, fix));
}

export interface IdxPairOptions {
  /** Required image count (the built-in datasets know theirs). */
  count?: number;
  /** Required per-image shape. */
  shape?: ImageShape;
  /** Labels must lie in 0..classes−1. */
  classes?: number;
  /** How to fix a missing or broken file, appended to every error. */
  fix?: string;
}

/** An images file (N×H×W or N×H×W×C) with its labels file (N), checked against each other. */
export function readIdxPair(imagesPath: string, labelsPath: string, o: IdxPairOptions = {}): ImageSet {
  const fix = o.fix ?? '';
  const images = readIdxFile(imagesPath, fix);
  const labels = readIdxFile(labelsPath, fix);
  const badImages = corruptIn(imagesPath, fix);
  const badLabels = corruptIn(labelsPath, fix);
  if (images.dims.length !== 3 && images.dims.length !== 4) throw badImages(`${images.dims.length} dimensions; an images file has 3 (N×H×W) or 4 (N×H×W×C)`);
  if (labels.dims.length !== 1) throw badLabels(`${labels.dims.length} dimensions; a labels file has 1 (N)`);
  const [n, h, w, c = 1] = images.dims;
  if (labels.dims[0] !== n) throw badLabels(`${labels.dims[0]} labels for the ${n} images of ${basename(imagesPath)}`);
  if (o.count !== undefined && n !== o.count) throw badImages(`${n} images, expected ${o.count}`);
  const shape: ImageShape = [h, w, c];
  if (o.shape && shape.join('x') !== o.shape.join('x')) throw badImages(`images of ${shape.join('×')}, expected ${o.shape.join('×')}`);
  const ints = Int32Array.from(labels.data);
  if (o.classes !== undefined) {
    const bad = ints.findIndex((l) => l >= o.classes!);
    if (bad >= 0) throw badLabels(`label ${ints[bad]} at position ${bad} is outside 0..${o.classes - 1}`);
  }
  return fromPixels(images.data, ints, shape);
}

/** Which file of a folder is which: the names MNIST, Fashion-MNIST, KMNIST and EMNIST use. */
function classify(name: string): { split: 'train' | 'test'; part: 'images' | 'labels' } | null {
  const n = name.toLowerCase();
  const part = n.includes('idx3') || n.includes('idx4') ? 'images' : n.includes('idx1') ? 'labels' : null;
  const split = n.includes('train') ? 'train' : n.includes('t10k') || n.includes('test') ? 'test' : null;
  return part && split ? { split, part } : null;
}

/** Optional class names: classes.txt, one name per line in label order. */
function readClassNames(dir: string, classes: number): string[] {
  const path = join(dir, 'classes.txt');
  const fallback = Array.from({ length: classes }, (_, i) => String(i));
  if (!existsSync(path)) return fallback;
  const names = readFileSync(path, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  if (names.length !== classes) {
    throw new TransferlabError('dataset_corrupt', `${path} names ${names.length} classes but the labels use ${classes}; give one name per line, in label order`);
  }
  return names;
}

export const IDX_FOLDER_HELP =
  'an IDX folder holds four files named like MNIST, KMNIST or EMNIST: train and test (or t10k) images (…idx3-ubyte) and labels (…idx1-ubyte), gzip-compressed or not, plus an optional classes.txt';

export function isIdxFolder(dir: string): boolean {
  return readdirSync(dir).some((f) => classify(f) !== null && statSync(join(dir, f)).isFile());
}

/** A folder of IDX files: train/test images and labels, found by their names. */
export function loadIdxFolder(dir: string, name = dir): Dataset {
  const source = resolve(dir);
  const found: Record<string, string[]> = { 'train-images': [], 'train-labels': [], 'test-images': [], 'test-labels': [] };
  for (const f of readdirSync(dir).sort()) {
    const role = classify(f);
    if (role && statSync(join(dir, f)).isFile()) found[`${role.split}-${role.part}`].push(f);
  }
  const pick = (role: string): string => {
    const files = found[role];
    if (files.length === 1) return join(dir, files[0]);
    const what = files.length === 0 ? 'no file' : `${files.length} files (${files.join(', ')})`;
    throw new TransferlabError('dataset_invalid', `${dir}: ${what} for the ${role.replace('-', ' ')}; ${IDX_FOLDER_HELP}`);
  };
  const train = readIdxPair(pick('train-images'), pick('train-labels'));
  const test = readIdxPair(pick('test-images'), pick('test-labels'), { shape: train.shape });
  let classes = 0;
  for (const set of [train, test]) for (const l of set.labels) classes = Math.max(classes, l + 1);
  if (classes < 2) throw new TransferlabError('dataset_invalid', `${dir}: the labels use ${classes} class; a classifier needs at least 2`);
  return { name, kind: 'idx-folder', source, shape: train.shape, classes, classNames: readClassNames(dir, classes), train, test };
}
