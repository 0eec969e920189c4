import { readFileSync } from 'node:fs';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import { sha256 } from '../../shared/model/model-io.js';
import type { InputShape } from '../../shared/protocol/index.js';

/**
 * An ONNX image classifier run by ONNX Runtime for Node (CPU). Everything that could make it
 * unservable is checked when it loads — operators (ONNX Runtime refuses unknown ones when the
 * session is created), the number and kind of inputs, fixed spatial size, the layout — so a bad
 * model fails at start-up with a message, never on a client's first request. Images arrive as
 * row-major HWC in [0, 1]; NCHW models get them transposed. Labels are the argmax of the first output
 * (logits or probabilities alike); probabilities are that output when it already is a distribution
 * (decided once, on the start-up probe), else its softmax — and leave only as the output policy allows.
 */
export type Layout = 'nchw' | 'nhwc';
export const LAYOUTS: readonly Layout[] = ['nchw', 'nhwc'];

export interface OnnxClassifier {
  inputShape: InputShape;
  classes: number;
  layout: Layout;
  /** How the layout was decided, for the start-up banner. */
  layoutSource: 'model' | '--layout';
  inputName: string;
  outputName: string;
  /** Images per session run: the model's fixed batch size, or null when the batch dimension is free. */
  fixedBatch: number | null;
  fileSha256: string;
  /** The first output already holds probabilities (non-negative, each row summing to 1 on the start-up probe). */
  outputIsProbabilities: boolean;
  label: Labeler;
  predict(images: Float32Array, count: number): Promise<{ labels: Int32Array; probabilities: Float32Array }>;
  close(): Promise<void>;
}

/** True when every row of `scores` (n × classes) is a probability distribution, within float error. */
function isDistribution(scores: Float32Array, n: number, classes: number): boolean {
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const v = scores[i * classes + k];
      if (!(v >= 0)) return false;
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-3) return false;
  }
  return true;
}

/** Row-wise softmax of n × classes logits, stable (the row's maximum subtracted first). */
export function softmaxRows(logits: Float32Array, n: number, classes: number): Float32Array {
  const out = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += out[i * classes + k] = Math.exp(row[k] - max);
    for (let k = 0; k < classes; k++) out[i * classes + k] /= sum;
  }
  return out;
}

type Ort = typeof import('onnxruntime-node');

const unservable = (message: string) => new TransferlabError('model_unservable', message, 400);
const SUPPORTED =
  'supported: one float32 image input [batch, channels, height, width] (NCHW) or [batch, height, width, channels] (NHWC) with fixed height, width and channels, pixels in [0, 1], and a first output of class scores [batch, classes]';
const CHANNELS = new Set([1, 3, 4]);

async function loadRuntime(): Promise<Ort> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    throw new TransferlabError(
      'onnx_runtime_missing',
      `ONNX Runtime for Node could not be loaded (${(e as Error).message.split('\n')[0]}); serving ONNX needs the package onnxruntime-node (an optional peer of transferlab, with the CPU binaries): ` +
        `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node (the variable skips its CUDA download), or npm ci in a clone`,
      500,
    );
  }
}

const dimText = (dims: readonly (number | string)[]) => `[${dims.map((d) => (typeof d === 'string' ? `"${d}"` : String(d))).join(', ')}]`;

/** NCHW or NHWC from where a plausible channel count (1, 3, 4) sits; the override wins when given. */
export function decideLayout(dims: readonly number[], override: Layout | undefined, path: string): { layout: Layout; source: 'model' | '--layout' } {
  if (override) return { layout: override, source: '--layout' };
  const first = CHANNELS.has(dims[1]);
  const last = CHANNELS.has(dims[3]);
  if (first && !last) return { layout: 'nchw', source: 'model' };
  if (last && !first) return { layout: 'nhwc', source: 'model' };
  throw unservable(
    `cannot tell whether the input ${dimText(dims)} of ${path} is NCHW or NHWC; say which with --layout nchw (PyTorch's default) or --layout nhwc (Keras/TensorFlow's)`,
  );
}

export async function loadOnnxClassifier(path: string, opts: { layout?: Layout; threads?: number } = {}): Promise<OnnxClassifier> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new TransferlabError('model_missing', `cannot read the ONNX model ${path}: ${(e as Error).message}`, 404);
  }
  const ort = await loadRuntime();
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0].slice(0, 300);
    const hint = /implementation|not (yet )?(supported|implemented)|Unrecognized|opset/i.test(msg)
      ? '; it uses an operator or opset ONNX Runtime (CPU) does not run — re-export with a standard opset (torch.onnx.export(..., opset_version=17)) and standard layers'
      : '';
    throw unservable(`ONNX Runtime cannot load ${path}: ${msg}${hint}`);
  }
  try {
    if (session.inputNames.length !== 1) {
      throw unservable(`${path} has ${session.inputNames.length} inputs (${session.inputNames.join(', ')}); ${SUPPORTED}`);
    }
    const input = session.inputMetadata[0];
    if (!input.isTensor) throw unservable(`${path}'s input ${input.name} is not a tensor; ${SUPPORTED}`);
    if (input.type !== 'float32') throw unservable(`${path}'s input ${input.name} is ${input.type}, not float32; ${SUPPORTED}`);
    if (input.shape.length !== 4) {
      throw unservable(`${path}'s input ${input.name} has shape ${dimText(input.shape)}, not an image batch of rank 4; ${SUPPORTED}`);
    }
    const image = input.shape.slice(1);
    if (image.some((d) => typeof d !== 'number' || d <= 0)) {
      throw unservable(`${path}'s input ${input.name} has shape ${dimText(input.shape)}: a dynamic image size; export it with a fixed one (only the batch dimension may be dynamic); ${SUPPORTED}`);
    }
    const dims = input.shape.map((d) => (typeof d === 'number' ? d : -1));
    const { layout, source } = decideLayout(dims, opts.layout, path);
    const inputShape: InputShape = layout === 'nchw' ? [dims[2], dims[3], dims[1]] : [dims[1], dims[2], dims[3]];
    const fixedBatch = typeof input.shape[0] === 'number' && input.shape[0] > 0 ? input.shape[0] : null;
    const outputName = session.outputNames[0];
    const run = async (images: Float32Array, count: number) => {
      const [h, w, c] = inputShape;
      const per = h * w * c;
      let data = images.subarray(0, count * per);
      if (layout === 'nchw') {
        // HWC → CHW per image.
        const out = new Float32Array(count * per);
        for (let n = 0; n < count; n++) {
          const base = n * per;
          for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) out[base + k * h * w + p] = images[base + p * c + k];
        }
        data = out;
      }
      const shape = layout === 'nchw' ? [count, c, h, w] : [count, h, w, c];
      const result = await session.run({ [input.name]: new ort.Tensor('float32', data, shape) }, [outputName]);
      const scores = result[outputName];
      const flat = scores.data as Float32Array;
      if (scores.dims.length !== 2 || scores.dims[0] !== count) {
        throw new TransferlabError('model_failed', `${path}'s output ${outputName} has shape [${scores.dims.join(', ')}], not [${count}, classes]`, 500);
      }
      return { scores: flat, classes: scores.dims[1] };
    };
    // One run at start-up: reads the class count of models whose output shape is symbolic, and
    // proves the graph runs before any client pays for a query.
    const probeCount = fixedBatch ?? 1;
    let classes: number;
    let outputIsProbabilities: boolean;
    try {
      const probe = await run(new Float32Array(probeCount * inputShape[0] * inputShape[1] * inputShape[2]).fill(0.5), probeCount);
      classes = probe.classes;
      outputIsProbabilities = isDistribution(probe.scores, probeCount, classes);
    } catch (e) {
      throw unservable(`${path} does not run on a ${inputShape.join('×')} image as ${layout.toUpperCase()}: ${(e as Error).message.split('\n')[0].slice(0, 300)}; ${SUPPORTED}`);
    }
    if (classes < 2) throw unservable(`${path}'s first output ${outputName} has ${classes} value(s) per image, not class scores; ${SUPPORTED}`);
    const argmax = (scores: Float32Array, n: number, out: Int32Array, at: number) => {
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let k = 1; k < classes; k++) if (scores[i * classes + k] > scores[i * classes + best]) best = k;
        out[at + i] = best;
      }
    };
    const per = inputShape[0] * inputShape[1] * inputShape[2];
    /** Every image's raw output row, run in the model's batch size (a fixed batch padded). */
    const outputs = async (images: Float32Array, count: number) => {
      const all = new Float32Array(count * classes);
      const step = fixedBatch ?? count;
      for (let start = 0; start < count; start += step) {
        const n = Math.min(step, count - start);
        let chunk = images.subarray(start * per, (start + n) * per);
        if (fixedBatch && n < fixedBatch) {
          // A model exported with a fixed batch runs only full batches: pad, keep the real rows.
          const padded = new Float32Array(fixedBatch * per);
          padded.set(chunk);
          chunk = padded;
        }
        const { scores } = await run(chunk, fixedBatch ?? n);
        all.set(scores.subarray(0, n * classes), start * classes);
      }
      return all;
    };
    return {
      inputShape,
      classes,
      layout,
      layoutSource: source,
      inputName: input.name,
      outputName,
      fixedBatch,
      fileSha256: sha256(bytes),
      outputIsProbabilities,
      async label(images, count) {
        const out = new Int32Array(count);
        argmax(await outputs(images, count), count, out, 0);
        return out;
      },
      async predict(images, count) {
        const scores = await outputs(images, count);
        const labels = new Int32Array(count);
        argmax(scores, count, labels, 0);
        return { labels, probabilities: outputIsProbabilities ? scores : softmaxRows(scores, count, classes) };
      },
      close: () => session.release(),
    };
  } catch (e) {
    await session.release();
    throw e;
  }
}
