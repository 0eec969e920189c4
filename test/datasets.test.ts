import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { mnistDir } from '../shared/datasets/builtin.js';
import { loadImageFolder } from '../shared/datasets/image-folder.js';
import { loadIdxFolder } from '../shared/datasets/idx.js';
import { loadDataset } from '../shared/datasets/index.js';
import { SHAPE_CLASSES, shapePng, writeShapesTree } from './shapes-tree.js';

/** The dataset readers: IDX folders and ImageFolder trees written here, the built-in sets as installed. */
const root = mkdtempSync(join(tmpdir(), 'transferlab-datasets-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An IDX file: magic (0, 0, 0x08, rank), big-endian dimensions, bytes. */
function idx(dims: number[], data: Uint8Array, typeCode = 0x08): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = typeCode;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

const seq = (n: number, f: (i: number) => number) => Uint8Array.from({ length: n }, (_, i) => f(i));

function idxFolder(name: string, files: Record<string, Buffer>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, b] of Object.entries(files)) writeFileSync(join(dir, f), b);
  return dir;
}

const GOOD = {
  // EMNIST-style names, the training images gzip-compressed.
  'emnist-x-train-images-idx3-ubyte.gz': gzipSync(idx([6, 4, 5], seq(120, (i) => i * 2))),
  'emnist-x-train-labels-idx1-ubyte': idx([6], Uint8Array.from([0, 1, 2, 0, 1, 2])),
  'emnist-x-test-images-idx3-ubyte': idx([3, 4, 5], seq(60, (i) => 255 - i)),
  'emnist-x-test-labels-idx1-ubyte.gz': gzipSync(idx([3], Uint8Array.from([2, 1, 0]))),
};

describe('IDX folders', () => {
  it('reads train and test images and labels, gzip or not, with shape, classes and class names', () => {
    const dir = idxFolder('good', { ...GOOD, 'classes.txt': Buffer.from('alpha\nbeta\ngamma\n') });
    const ds = loadIdxFolder(dir);
    expect(ds.shape).toEqual([4, 5, 1]);
    expect([ds.train.count, ds.test.count, ds.classes]).toEqual([6, 3, 3]);
    expect(ds.classNames).toEqual(['alpha', 'beta', 'gamma']);
    expect(Array.from(ds.train.pixels.subarray(0, 4))).toEqual([0, 2, 4, 6]);
    expect(ds.test.images[1]).toBeCloseTo(254 / 255, 6);
    expect(Array.from(ds.test.labels)).toEqual([2, 1, 0]);
  });

  it('names the file and what is wrong: magic number, data type, sizes, counts, missing or ambiguous files', () => {
    const bad = (name: string, replace: Record<string, Buffer>) => () => loadIdxFolder(idxFolder(name, { ...GOOD, ...replace }));
    expect(bad('magic', { 'emnist-x-test-images-idx3-ubyte': Buffer.from([1, 2, 3, 4, 0, 0, 0, 0]) })).toThrow(/test-images-idx3-ubyte.*magic number 0x01020304/);
    expect(bad('float', { 'emnist-x-test-images-idx3-ubyte': idx([3, 4, 5], new Uint8Array(240), 0x0d) })).toThrow(/data type 0xd; only unsigned bytes/);
    expect(bad('short', { 'emnist-x-test-images-idx3-ubyte': idx([3, 4, 5], new Uint8Array(59)) })).toThrow(/59 data bytes, expected 60/);
    expect(bad('count', { 'emnist-x-test-labels-idx1-ubyte.gz': idx([2], Uint8Array.from([0, 1])) })).toThrow(/2 labels for the 3 images/);
    expect(bad('shape', { 'emnist-x-test-images-idx3-ubyte': idx([3, 5, 4], new Uint8Array(60)) })).toThrow(/images of 5×4×1, expected 4×5×1/);
    expect(bad('gzip', { 'emnist-x-train-images-idx3-ubyte.gz': Buffer.from([0x1f, 0x8b, 1, 2, 3]) })).toThrow(/gzip data does not decompress/);
    const { ['emnist-x-test-labels-idx1-ubyte.gz']: _gone, ...three } = GOOD;
    expect(() => loadIdxFolder(idxFolder('missing', three))).toThrow(/no file for the test labels/);
    expect(bad('twice', { 't10k-labels-idx1-ubyte': idx([3], Uint8Array.from([0, 1, 2])) })).toThrow(/2 files .* for the test labels/);
    expect(() => loadIdxFolder(idxFolder('names', { ...GOOD, 'classes.txt': Buffer.from('a\nb\n') }))).toThrow(/names 2 classes but the labels use 3/);
  });
});

describe('ImageFolder trees', () => {
  it('reads RGB PNGs as H×W×3 with sorted class folders and a seeded, stratified split', () => {
    const dir = writeShapesTree(join(root, 'shapes'), { size: 12, perClass: 10, seed: 4 });
    const a = loadImageFolder(dir);
    expect(a.shape).toEqual([12, 12, 3]);
    expect(a.classNames).toEqual([...SHAPE_CLASSES].sort());
    expect([a.train.count, a.test.count]).toEqual([24, 6]);
    expect(Array.from(a.test.labels).sort()).toEqual([0, 0, 1, 1, 2, 2]);
    // The same tree gives the same split, image for image.
    const b = loadImageFolder(dir);
    expect(Buffer.from(b.test.pixels).equals(Buffer.from(a.test.pixels))).toBe(true);
    // RGB stays RGB: somewhere in a square image the red channel dominates.
    const square = a.classNames.indexOf('square');
    const i = Array.from(a.train.labels).indexOf(square);
    const px = a.train.pixels.subarray(i * 12 * 12 * 3, (i + 1) * 12 * 12 * 3);
    const red = Array.from({ length: 144 }, (_, p) => px[3 * p] - px[3 * p + 2]).some((d) => d > 100);
    expect(red).toBe(true);
  });

  it('reads greyscale PNGs as one channel and honours train/ and test/ folders', () => {
    const grey = loadImageFolder(writeShapesTree(join(root, 'grey'), { size: 10, perClass: 4, grey: true }));
    expect(grey.shape).toEqual([10, 10, 1]);
    const split = join(root, 'split');
    writeShapesTree(join(split, 'train'), { size: 10, perClass: 5, seed: 1 });
    writeShapesTree(join(split, 'test'), { size: 10, perClass: 2, seed: 2 });
    const ds = loadImageFolder(split);
    expect([ds.train.count, ds.test.count, ds.classes]).toEqual([15, 6, 3]);
  });

  it('refuses mixed sizes, empty classes, non-PNG files, a single class and mismatched splits, naming the file', () => {
    const tree = (name: string) => writeShapesTree(join(root, name), { size: 8, perClass: 3 });
    const mixed = tree('mixed');
    writeFileSync(join(mixed, 'disc', 'big.png'), shapePng('disc', Math.random, 9));
    expect(() => loadImageFolder(mixed)).toThrow(/big\.png is 9×9 but the other images are 8×8/);
    const empty = tree('empty');
    mkdirSync(join(empty, 'zebra'));
    expect(() => loadImageFolder(empty)).toThrow(/class folder .*zebra is empty/);
    const jpeg = tree('jpeg');
    writeFileSync(join(jpeg, 'square', 'photo.jpg'), Buffer.from([0xff, 0xd8, 0xff]));
    expect(() => loadImageFolder(jpeg)).toThrow(/photo\.jpg is not a PNG/);
    const broken = tree('broken');
    writeFileSync(join(broken, 'square', 'broken.png'), Buffer.from('not a png'));
    expect(() => loadImageFolder(broken)).toThrow(/broken\.png is not a readable PNG/);
    const one = join(root, 'one');
    mkdirSync(join(one, 'only'), { recursive: true });
    writeFileSync(join(one, 'only', 'a.png'), PNG.sync.write(new PNG({ width: 4, height: 4 })));
    expect(() => loadImageFolder(one)).toThrow(/1 class folder\(s\); a classifier needs at least 2/);
    const skew = join(root, 'skew');
    writeShapesTree(join(skew, 'train'), { size: 8, perClass: 2 });
    writeShapesTree(join(skew, 'test'), { size: 8, perClass: 2 });
    rmSync(join(skew, 'test', 'disc'), { recursive: true });
    expect(() => loadImageFolder(skew)).toThrow(/hold different class folders/);
  });
});

describe('built-in datasets and --dataset resolution', () => {
  it('keeps MNIST byte for byte and in file order', () => {
    const raw = readFileSync(join(mnistDir(), 't10k-images-idx3-ubyte')).subarray(16);
    const ds = loadDataset('mnist');
    const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    expect(digest(ds.test.pixels)).toBe(digest(raw));
    expect(ds.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('reads Fashion-MNIST from the Debian package, or names the package when it is missing', () => {
    const before = process.env.FASHION_MNIST_DIR;
    process.env.FASHION_MNIST_DIR = join(root, 'no-such-dir');
    try {
      expect(() => loadDataset('fashion-mnist')).toThrow(/apt-get install dataset-fashion-mnist/);
    } finally {
      if (before === undefined) delete process.env.FASHION_MNIST_DIR;
      else process.env.FASHION_MNIST_DIR = before;
    }
    const ds = loadDataset('fashion-mnist');
    expect([ds.test.count, ds.classes, ds.shape]).toEqual([10_000, 10, [28, 28, 1]]);
    expect(Array.from(ds.test.labels.subarray(0, 5))).toEqual([9, 2, 1, 1, 6]);
    expect(ds.classNames[9]).toBe('Ankle boot');
  });

  it('rejects an unknown name or a file, listing what is accepted', () => {
    expect(() => loadDataset('cifar-10')).toThrow(/neither a built-in dataset \(mnist, fashion-mnist\) nor an existing folder/);
    const file = join(root, 'file.txt');
    writeFileSync(file, 'x');
    expect(() => loadDataset(file)).toThrow(/is a file; pass the folder/);
  });
});
