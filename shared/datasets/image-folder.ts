import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { PNG } from 'pngjs';
import { TransferlabError } from '../errors.js';
import { createRng, permutation } from '../random.js';
import { fromPixels } from './images.js';
import type { Dataset, ImageSet, ImageShape } from './types.js';

/**
 * An ImageFolder tree (torchvision's convention): root/<class name>/*.png, class index = the folder
 * names in sorted order. With root/train/ and root/test/ (each holding the same class folders) those
 * are the splits; otherwise every class is split by a fixed seeded permutation, so the victim's
 * trainer and the attacker always see the same split. Greyscale PNGs give C = 1; if any image is in
 * colour, all are read as RGB (grey replicated). Alpha is dropped. Hidden files (".…") are ignored.
 */
export const SPLIT_SEED = 0;
export const TEST_FRACTION = 0.2;

export const IMAGE_FOLDER_HELP =
  'an ImageFolder tree holds one folder per class with PNG images of one size (root/<class>/*.png), optionally under root/train/ and root/test/';

interface Decoded {
  file: string;
  png: PNG;
  colour: boolean;
}

const visible = (dir: string) => readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
const invalid = (message: string) => new TransferlabError('dataset_invalid', message);

function classFolders(root: string): string[] {
  const entries = visible(root);
  const dirs = entries.filter((f) => statSync(join(root, f)).isDirectory());
  const stray = entries.filter((f) => !dirs.includes(f));
  if (stray.length) throw invalid(`${root} holds files beside its class folders (${stray.slice(0, 3).join(', ')}); ${IMAGE_FOLDER_HELP}`);
  if (dirs.length < 2) throw invalid(`${root} holds ${dirs.length} class folder(s); a classifier needs at least 2; ${IMAGE_FOLDER_HELP}`);
  return dirs;
}

function decodeClass(dir: string): Decoded[] {
  const files = visible(dir);
  if (files.length === 0) throw invalid(`class folder ${dir} is empty; every class needs at least one PNG image`);
  return files.map((f) => {
    const file = join(dir, f);
    if (statSync(file).isDirectory()) throw invalid(`${file} is a folder; a class folder holds PNG images only`);
    if (extname(f).toLowerCase() !== '.png') throw invalid(`${file} is not a PNG (only .png images are read); convert it or move it out of the tree`);
    let png: PNG;
    try {
      png = PNG.sync.read(readFileSync(file));
    } catch (e) {
      throw invalid(`${file} is not a readable PNG: ${(e as Error).message}`);
    }
    // colorType bit 1 is "colour used" (2 = RGB, 3 = palette, 6 = RGBA); 0 and 4 are greyscale.
    const colour = ((png as PNG & { colorType: number }).colorType & 2) !== 0;
    return { file, png, colour };
  });
}

/** Pack decoded PNGs of one size into an image set. */
function pack(items: { d: Decoded; label: number }[], shape: ImageShape): ImageSet {
  const [h, w, c] = shape;
  const pixels = new Uint8Array(items.length * h * w * c);
  const labels = new Int32Array(items.length);
  items.forEach(({ d, label }, i) => {
    if (d.png.width !== w || d.png.height !== h) {
      throw invalid(`${d.file} is ${d.png.width}×${d.png.height} but the other images are ${w}×${h}; every image of the tree must have the same size`);
    }
    const rgba = d.png.data;
    const base = i * h * w * c;
    for (let p = 0; p < h * w; p++) {
      if (c === 1) pixels[base + p] = rgba[4 * p];
      else for (let k = 0; k < 3; k++) pixels[base + 3 * p + k] = rgba[4 * p + k];
    }
    labels[i] = label;
  });
  return fromPixels(pixels, labels, shape);
}

function shapeOf(all: Decoded[]): ImageShape {
  const first = all[0].png;
  return [first.height, first.width, all.some((d) => d.colour) ? 3 : 1];
}

/** A stratified split: per class, a seeded share goes to test (at least one image when the class has two). */
function splitClass(items: Decoded[], label: number): { train: Decoded[]; test: Decoded[] } {
  const p = permutation(items.length, createRng(SPLIT_SEED * 7919 + label));
  const nTest = items.length < 2 ? 0 : Math.max(1, Math.round(items.length * TEST_FRACTION));
  const chosen = new Set(Array.from(p.slice(0, nTest)));
  return { train: items.filter((_, i) => !chosen.has(i)), test: items.filter((_, i) => chosen.has(i)) };
}

export function loadImageFolder(root: string, name = root): Dataset {
  const source = resolve(root);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw invalid(`${root} is not a folder; ${IMAGE_FOLDER_HELP}`);
  const top = visible(root);
  const presplit = top.includes('train') && top.includes('test') && statSync(join(root, 'train')).isDirectory();
  const trainItems: { d: Decoded; label: number }[] = [];
  const testItems: { d: Decoded; label: number }[] = [];
  let classNames: string[];
  if (presplit) {
    classNames = classFolders(join(root, 'train'));
    const testNames = classFolders(join(root, 'test'));
    if (testNames.join('\n') !== classNames.join('\n')) {
      throw invalid(`${root}/train and ${root}/test hold different class folders (${classNames.join(', ')} vs ${testNames.join(', ')}); they must name the same classes`);
    }
    classNames.forEach((c, label) => {
      trainItems.push(...decodeClass(join(root, 'train', c)).map((d) => ({ d, label })));
      testItems.push(...decodeClass(join(root, 'test', c)).map((d) => ({ d, label })));
    });
  } else {
    classNames = classFolders(root);
    classNames.forEach((c, label) => {
      const split = splitClass(decodeClass(join(root, c)), label);
      trainItems.push(...split.train.map((d) => ({ d, label })));
      testItems.push(...split.test.map((d) => ({ d, label })));
    });
  }
  const shape = shapeOf([...trainItems, ...testItems].map((x) => x.d));
  const train = pack(trainItems, shape);
  const test = pack(testItems, shape);
  if (test.count === 0) throw invalid(`${root} yields no test images; give every class at least two images`);
  return { name, kind: 'image-folder', source, shape, classes: classNames.length, classNames, train, test };
}
