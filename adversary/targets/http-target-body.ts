/**
 * The `http` target's request body and answer, from its target file (http-target-file.ts): a batch of
 * quantised images written into the body template the way the API takes them, and the reply read at
 * the file's path. Pure functions: the transport sends, retries and counts.
 */
import { TransferlabError } from '../../shared/errors.js';
import { encodePng } from './png.js';
import { fansOut, readJsonPath } from './json-path.js';
import { classIndex, readTorchServeAnswer, type ClassSpace, type OneAnswer } from './torchserve-answer.js';
import { IMAGE_PLACEHOLDER, IMAGES_PLACEHOLDER, type HttpTargetSpec } from './http-target-file.js';

type Shape = readonly [number, number, number];
type ImageWriting = HttpTargetSpec['images'];

/** One image (H×W×C uint8, row-major) as the API takes it: nested or flat numbers in its layout and scale, or a base64 PNG. */
export function writeImage(pixels: Uint8Array, shape: Shape, how: ImageWriting): unknown {
  const [h, w, c] = shape;
  if (how.encoding === 'png-base64') return encodePng(pixels, h, w, c).toString('base64');
  // unit: the exact value the quantised byte stands for, so the API decodes the bytes the cache is keyed by.
  const value = how.scale === 'byte' ? (b: number) => b : (b: number) => b / 255;
  const at = (y: number, x: number, ch: number) => value(pixels[(y * w + x) * c + ch]);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  if (how.encoding === 'flat') {
    if (how.layout === 'hwc') return Array.from(pixels, value);
    return range(c).flatMap((ch) => range(h).flatMap((y) => range(w).map((x) => at(y, x, ch))));
  }
  if (how.layout === 'hwc') return range(h).map((y) => range(w).map((x) => range(c).map((ch) => at(y, x, ch))));
  return range(c).map((ch) => range(h).map((y) => range(w).map((x) => at(y, x, ch))));
}

/** `template` with the string `placeholder` replaced by `value` (a deep copy; nothing else changes). */
export function fillTemplate(template: unknown, placeholder: string, value: unknown): unknown {
  if (template === placeholder) return value;
  if (Array.isArray(template)) return template.map((t) => fillTemplate(t, placeholder, value));
  if (template !== null && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([k, t]) => [k, fillTemplate(t, placeholder, value)]));
  }
  return template;
}

/** The JSON body of one batch: `count` images of `shape` (uint8 bytes, one after another). */
export function batchBody(spec: HttpTargetSpec, bytes: Uint8Array, count: number, shape: Shape): string {
  const stride = shape[0] * shape[1] * shape[2];
  const entries = Array.from({ length: count }, (_, i) => {
    const image = writeImage(bytes.subarray(i * stride, (i + 1) * stride), shape, spec.images);
    return spec.images.item === undefined ? image : fillTemplate(spec.images.item, IMAGE_PLACEHOLDER, image);
  });
  return JSON.stringify(fillTemplate(spec.body, IMAGES_PLACEHOLDER, entries));
}

const bad = (message: string) => new TransferlabError('victim_bad_response', message, 502);

/**
 * The entries a path points at, one per image: the matches of a path with a wildcard, or the items of
 * the one list a plain path reaches.
 */
function entriesAt(doc: unknown, path: string, count: number, what: string): unknown[] {
  const found = readJsonPath(doc, path);
  let entries: unknown[];
  if (fansOut(path)) entries = found;
  else if (found.length === 1 && Array.isArray(found[0])) entries = found[0] as unknown[];
  else throw bad(`the answer has no list of ${what} at ${path}${found.length ? ` (found ${JSON.stringify(found[0])?.slice(0, 80)})` : ''}`);
  if (entries.length === 0) throw bad(`the answer has no ${what} at ${path}`);
  if (entries.length !== count) throw bad(`the answer has ${entries.length} ${what} at ${path} for ${count} images`);
  return entries;
}

/** Each image's label (and the scores, when the path points at them) from the API's JSON reply. */
export function readBatchAnswer(spec: HttpTargetSpec, reply: unknown, count: number, space: ClassSpace): OneAnswer[] {
  if (spec.answer.labels !== undefined) {
    return entriesAt(reply, spec.answer.labels, count, 'labels').map((l) => ({ label: classIndex(l, space) }));
  }
  const path = spec.answer.scores as string;
  return entriesAt(reply, path, count, 'score lists').map((s) => {
    if (typeof s === 'number' || typeof s === 'string') throw bad(`the answer at ${path} holds ${JSON.stringify(s)}, not a list of scores`);
    return readTorchServeAnswer(s, space);
  });
}

export interface ProbedInfo {
  inputShape?: [number, number, number];
  classes?: number;
  classNames?: string[];
}

/** What a probe's reply says of the model, at the paths the target file gives. */
export function readProbe(probe: NonNullable<HttpTargetSpec['probe']>, reply: unknown): ProbedInfo {
  const one = (path: string | undefined, what: string): unknown => {
    if (path === undefined) return undefined;
    const found = readJsonPath(reply, path);
    if (found.length !== 1) throw bad(`the probe's answer has ${found.length === 0 ? 'nothing' : `${found.length} values`} at ${path} (the ${what})`);
    return found[0];
  };
  const out: ProbedInfo = {};
  const shape = one(probe.inputShape, 'input shape');
  if (shape !== undefined) {
    if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
      throw bad(`the probe's input shape at ${probe.inputShape} is ${JSON.stringify(shape)}, not [height, width, channels]`);
    }
    out.inputShape = shape as [number, number, number];
  }
  const classes = one(probe.classes, 'class count');
  if (classes !== undefined) {
    if (!Number.isInteger(classes) || (classes as number) < 1) throw bad(`the probe's class count at ${probe.classes} is ${JSON.stringify(classes)}`);
    out.classes = classes as number;
  }
  const names = one(probe.classNames, 'class names');
  if (names !== undefined) {
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw bad(`the probe's class names at ${probe.classNames} are not a list of strings`);
    out.classNames = names as string[];
  }
  return out;
}
