/**
 * Between the oracle's images (wire bytes, row-major HWC) and a served model's tensors: which layout
 * the model's declared input shape means (NHWC or NCHW, a flat vector, a grayscale H×W), the values
 * it takes (FP32 in [0,1] or UINT8 0..255), and what its output means (scores per class, from which
 * the label is the argmax, or the labels themselves). Every check runs on the metadata, before the
 * first paid query; a clear error names the target, the URL and the shapes.
 */
import { TransferlabError } from '../../shared/errors.js';
import type { InputShape } from '../../shared/protocol/index.js';
import type { PixelFormat } from '../oracle/core.js';
import { parseInputShape, type TargetSettings } from './settings.js';

export type Layout = 'nhwc' | 'nchw';
/** What the model's input takes: floats in [0,1] or bytes 0..255. */
export type ValueKind = 'float' | 'uint8';

export interface InputPlan {
  /** The image as the attack sees it. */
  shape: InputShape;
  layout: Layout;
  /** One image's dims as the model declares them (sizes filled in): the nesting of a row-format instance. */
  dims: number[];
  /** A fixed batch size the model declares (null: any). */
  batch: number | null;
}

const isChannels = (d: number) => d === 1 || d === 3 || d === 4;
const show = (dims: readonly number[]) => `[${dims.join(', ')}]`;

/**
 * The image shape and layout a declared input shape means; its first dim is the batch (-1: any).
 * Per image: [H, W, C] or [C, H, W] (told apart by which end looks like channels, else --layout),
 * [H, W] (grayscale), or a flat vector (its H,W,C from --input-shape).
 */
export function planInput(declared: readonly number[], s: Pick<TargetSettings, 'layout' | 'inputShape'>, where: string): InputPlan {
  const bad = (why: string) => new TransferlabError('target_bad_shape', `${where}: the model's input shape ${show(declared)} ${why}`);
  const given = parseInputShape(s.inputShape);
  if (declared.length < 2) throw bad('has no batch dimension and image dimensions; this client sends batches');
  const batch = declared[0] > 0 ? declared[0] : null;
  const per = declared.slice(1);
  const fits = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d < 0 || d === b[i]);
  let layout: Layout;
  let shape: number[];
  if (per.length === 3) {
    const asNhwc = per, asNchw = [per[1], per[2], per[0]];
    const looks: Layout | undefined = isChannels(per[2]) && !isChannels(per[0]) ? 'nhwc' : isChannels(per[0]) && !isChannels(per[2]) ? 'nchw' : undefined;
    // A --layout against what the shape plainly says is a slip, unless --input-shape confirms it.
    if (s.layout && looks && s.layout !== looks && !given) throw bad(`looks ${looks.toUpperCase()}, not --layout ${s.layout}; give --input-shape H,W,C too if ${s.layout.toUpperCase()} is meant`);
    if (s.layout) layout = s.layout;
    else if (given && fits(asNhwc, given) !== fits(asNchw, given)) layout = fits(asNhwc, given) ? 'nhwc' : 'nchw';
    else if (looks) layout = looks;
    else throw bad(`could be NHWC or NCHW; say which with --layout nhwc|nchw`);
    shape = layout === 'nhwc' ? asNhwc : asNchw;
  } else if (per.length === 2) {
    layout = 'nhwc';
    shape = [per[0], per[1], 1];
  } else if (per.length === 1) {
    if (!given) throw bad('is a flat vector; give the image\'s --input-shape H,W,C');
    layout = s.layout ?? 'nhwc';
    shape = [...given];
    if (per[0] > 0 && per[0] !== given[0] * given[1] * given[2]) throw bad(`holds ${per[0]} values per image, not --input-shape ${given.join(',')} (${given[0] * given[1] * given[2]})`);
  } else throw bad('is not one this client can fill (a batch of [H, W, C], [C, H, W], [H, W] or flat images)');
  if (given) {
    if (!fits(shape, given)) throw bad(`is ${layout.toUpperCase()} ${show(shape)} per image, not --input-shape ${given.join(',')}`);
    shape = [...given];
  }
  if (shape.some((d) => d < 1)) throw bad(`leaves image sizes open (${show(shape)}); give --input-shape H,W,C`);
  const [h, w, c] = shape;
  const dims = per.length === 3 ? (layout === 'nhwc' ? [h, w, c] : [c, h, w]) : per.length === 2 ? [h, w] : [h * w * c];
  return { shape: [h, w, c], layout, dims, batch };
}

/**
 * The request's values, flat in the model's order: `count` images of the wire bytes (HWC, uint8 or
 * float32) as floats v ∈ [0,1] (float inputs) or bytes round(255·v) (uint8 inputs), transposed to CHW
 * for an NCHW model.
 */
export function modelValues(body: Uint8Array, count: number, format: PixelFormat, plan: InputPlan, kind: ValueKind): number[] {
  const [h, w, c] = plan.shape;
  const per = h * w * c;
  const f32 = format === 'float32' ? new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)) : null;
  const value = (i: number): number => {
    if (kind === 'uint8') return f32 ? Math.round(f32[i] * 255) : body[i];
    // float: the bytes a uint8 client sends are the image; v = b/255 is what the model sees of them.
    return f32 ? f32[i] : body[i] / 255;
  };
  const out = new Array<number>(count * per);
  for (let n = 0; n < count; n++) {
    const base = n * per;
    if (plan.layout === 'nhwc') {
      for (let i = 0; i < per; i++) out[base + i] = value(base + i);
      continue;
    }
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) out[base + ch * h * w + y * w + x] = value(base + (y * w + x) * c + ch);
  }
  return out;
}

/** A flat run of values as nested lists of the given dims (a row-format instance). */
export function nest(flat: readonly number[], offset: number, dims: readonly number[]): unknown {
  if (dims.length === 1) return flat.slice(offset, offset + dims[0]);
  const inner = dims.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: dims[0] }, (_, i) => nest(flat, offset + i * inner, dims.slice(1)));
}

/** Nested lists of numbers, flattened row-major; null when something in them is not a finite number. */
export function flatten(v: unknown): number[] | null {
  const out: number[] = [];
  const walk = (x: unknown): boolean => {
    if (Array.isArray(x)) return x.every(walk);
    if (typeof x !== 'number' || !Number.isFinite(x)) return false;
    out.push(x);
    return true;
  };
  return walk(v) ? out : null;
}

/**
 * The output a target reads, of the `outputs` its server declares: the one --output-name names, else the
 * first. A name the server does not declare is refused, naming those it does (`whose`: "the model",
 * "the serving_default signature"); with no declared outputs the name is taken on trust.
 */
export function pickOutput<T>(outputs: readonly T[], nameOf: (o: T) => string, wanted: string | undefined, whose: string, where: string): T | undefined {
  if (wanted === undefined) return outputs[0];
  const found = outputs.find((o) => nameOf(o) === wanted);
  if (outputs.length && !found) throw new TransferlabError('target_bad_output', `${where}: ${whose} has no output named ${wanted} (it has ${outputs.map(nameOf).join(', ')}); fix --output-name`);
  return found;
}

/** What a declared output shape holds per image: `classes` scores, or one label (size 1). */
export function outputClasses(declared: readonly number[] | undefined, s: Pick<TargetSettings, 'classes'>, where: string): { classes: number; labelsOnly: boolean } {
  const per = declared?.slice(1) ?? [];
  const size = per.length === 0 ? 1 : per.every((d) => d > 0) ? per.reduce((a, b) => a * b, 1) : -1;
  if (declared && size > 1) {
    if (s.classes !== undefined && s.classes !== size) throw new TransferlabError('target_bad_shape', `${where}: the output holds ${size} classes per image (shape ${show(declared)}), not --classes ${s.classes}`);
    return { classes: size, labelsOnly: false };
  }
  if (s.classes === undefined) {
    const what = declared ? `output shape ${show(declared)} gives a label per image but not how many classes` : 'metadata does not describe the output';
    throw new TransferlabError('target_bad_shape', `${where}: the ${what}; give --classes N`);
  }
  return { classes: s.classes, labelsOnly: declared !== undefined && size === 1 };
}

/**
 * Labels (and probabilities) of `count` images from an output's flat values: one value per image is
 * a label; `classes` per image are scores, the label their argmax (the first of equal maxima, as
 * tf.argMax). Scores that are not probabilities (a value outside [0, 1], or a row summing past 1 + 1e-3)
 * are logits and go through softmax, which keeps their argmax; a row of probabilities summing to less
 * than 1 (the K best, zeros elsewhere) is kept as it is.
 */
export function readOutput(values: readonly number[], count: number, classes: number, where: string): { labels: Int32Array; scores?: Float32Array } {
  if (values.length === count) {
    const odd = values.find((v) => !Number.isInteger(v));
    if (odd !== undefined) throw new TransferlabError('target_bad_response', `${where}: the output holds one value per image, but ${odd} is not a class label`, 502);
    return { labels: Int32Array.from(values) };
  }
  if (values.length !== count * classes) {
    throw new TransferlabError('target_bad_response', `${where}: the output holds ${values.length} values for ${count} images of ${classes} classes`, 502);
  }
  const labels = new Int32Array(count);
  const scores = new Float32Array(count * classes);
  for (let n = 0; n < count; n++) {
    const row = values.slice(n * classes, (n + 1) * classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
    labels[n] = best;
    const sum = row.reduce((a, b) => a + b, 0);
    // Probabilities, or the K best of them with zeros elsewhere (a top-k endpoint); rows summing past 1 are logits.
    const probabilities = row.every((v) => v >= 0 && v <= 1) && sum <= 1 + 1e-3;
    if (probabilities) row.forEach((v, c) => (scores[n * classes + c] = v));
    else {
      const exps = row.map((v) => Math.exp(v - row[best]));
      const z = exps.reduce((a, b) => a + b, 0);
      exps.forEach((e, c) => (scores[n * classes + c] = e / z));
    }
  }
  return { labels, scores };
}

/** Rows of a [N, classes] output that must all be one-hot before the server is taken as label-only. */
export const ONE_HOT_ROWS = 100;

const isOneHot = (values: readonly number[], from: number, classes: number): boolean => {
  let ones = 0;
  for (let c = 0; c < classes; c++) {
    const v = values[from + c];
    if (v === 1) ones++;
    else if (v !== 0) return false;
  }
  return ones === 1;
};

/**
 * What a [N, classes] output really gives, which its metadata cannot say: a label-only server (the
 * project's victim with `--output label` among them) answers each label as a one-hot row. Read from
 * the answers already paid for, never from a query of its own: one row that is not one-hot proves
 * probabilities; the first ONE_HOT_ROWS rows all one-hot are taken as labels only. (Probabilities
 * rounded to certainty look the same row by row; a hundred in a row at the start of a run are rare.)
 */
export class OneHotWitness {
  private rows = 0;
  private verdict: 'label' | 'scores' | undefined;

  constructor(private readonly where: string) {}

  /** The rows of one answer seen; a reason when the server is now known to give labels only. */
  see(values: readonly number[], count: number, classes: number): string | undefined {
    if (this.verdict === undefined) {
      for (let n = 0; n < count && this.verdict === undefined; n++) {
        if (!isOneHot(values, n * classes, classes)) this.verdict = 'scores';
        else if (++this.rows >= ONE_HOT_ROWS) this.verdict = 'label';
      }
    }
    return this.verdict === 'label' ? `${this.where}: its output rows are one-hot (its first ${ONE_HOT_ROWS} answered rows all were), a label-only server's answer` : undefined;
  }
}
