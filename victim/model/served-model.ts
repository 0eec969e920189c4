import { existsSync, readFileSync, statSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import { isLayersFolder, loadLayersFolder } from '../../shared/model/layers-folder.js';
import type { InputShape } from '../../shared/protocol/index.js';
import type { ServedModelInfo } from '../http/app.js';
import type { Prediction } from '../http/batcher.js';
import { loadOnnxClassifier, type Layout } from './onnx-model.js';

/**
 * The model behind the service, whatever its format: an ONNX file, a TF.js layers folder as
 * tfjs-converter writes it, or the project's own folders. What the service needs from it is the
 * same for all: its input shape and classes (for /v1/info), a labeller of row-major HWC images in
 * [0, 1], and an identity (the sha256 of its weights) for the banner and the audit log.
 */
export type ModelFormat = 'onnx' | 'tfjs-layers' | 'transferlab';

export interface ServedModel {
  format: ModelFormat;
  info: ServedModelInfo;
  /** sha256 of the weights (TF.js: the weight files in manifest order; ONNX: the whole file). */
  weightsSha256: string;
  /** One line for the start-up banner. */
  describe: string;
  /** metadata.json of the project's own folders. */
  metadata?: Record<string, unknown>;
  label: Labeler;
  /** Labels (the same as `label`'s) and each image's class probabilities. */
  predict: (images: Float32Array, count: number) => Promise<Required<Prediction>>;
  /** Where the probabilities come from, for the banner. */
  probabilitiesFrom: string;
  close(): Promise<void>;
}

export interface ServeModelOptions {
  layout?: Layout;
  /** File of class names: one per line, or a JSON array of strings. */
  classesFile?: string;
  /** Dataset name for /v1/info when the model does not record one. */
  dataset?: string;
  /** ONNX Runtime threads (default: its own choice). */
  threads?: number;
}

export function readClassNames(path: string, classes: number): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TransferlabError('invalid_config', `cannot read the class names file ${path}: ${(e as Error).message}`);
  }
  let names: unknown;
  if (text.trimStart().startsWith('[')) {
    try {
      names = JSON.parse(text);
    } catch (e) {
      throw new TransferlabError('invalid_config', `${path} starts like a JSON array but is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) {
      throw new TransferlabError('invalid_config', `${path} must be a JSON array of strings, or one class name per line`);
    }
  } else {
    names = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  }
  const list = names as string[];
  if (list.length !== classes) {
    throw new TransferlabError('invalid_config', `${path} names ${list.length} classes but the model has ${classes}; give one name per class, in class-index order`);
  }
  return list;
}

/**
 * Labels of count HWC images from a TF.js model, every intermediate tensor released. Each chunk is one
 * model call: predict() alone would cut it again into batches of 32 (TF.js's default), which made a
 * 1,000-image request about three times slower on the wasm backend for the same outputs.
 */
function tfjsLabeler(model: tf.LayersModel, shape: InputShape, batchSize = 1024) {
  const per = shape[0] * shape[1] * shape[2];
  return (images: Float32Array, count: number): Int32Array => {
    const out = new Int32Array(count);
    for (let start = 0; start < count; start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const labels = tf.tidy(() => {
        const x = tf.tensor4d(images.subarray(start * per, (start + n) * per), [n, ...shape]);
        return (model.predict(x, { batchSize: n }) as tf.Tensor2D).argMax(1);
      });
      out.set(labels.dataSync() as Int32Array, start);
      labels.dispose();
    }
    return out;
  };
}

/**
 * Labels and probabilities from a TF.js model: labels are the argmax of the model's own output (as
 * tfjsLabeler's), probabilities its output when it ends in a softmax, else the softmax of its logits.
 */
function tfjsPredictor(model: tf.LayersModel, shape: InputShape, softmaxLast: boolean, batchSize = 1024) {
  const per = shape[0] * shape[1] * shape[2];
  return (images: Float32Array, count: number): Required<Prediction> => {
    const labels = new Int32Array(count);
    let probabilities: Float32Array | undefined;
    for (let start = 0; start < count; start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const [top, probs] = tf.tidy(() => {
        const x = tf.tensor4d(images.subarray(start * per, (start + n) * per), [n, ...shape]);
        const out = model.predict(x, { batchSize: n }) as tf.Tensor2D;
        return [out.argMax(1), softmaxLast ? out : tf.softmax(out)];
      });
      labels.set(top.dataSync() as Int32Array, start);
      const data = probs.dataSync() as Float32Array;
      probabilities ??= new Float32Array(count * (data.length / n));
      probabilities.set(data, start * (data.length / n));
      tf.dispose([top, probs]);
    }
    return { labels, probabilities: probabilities ?? new Float32Array(0) };
  };
}

export async function openServedModel(path: string, opts: ServeModelOptions = {}): Promise<ServedModel> {
  if (!existsSync(path)) throw new TransferlabError('model_missing', `no model at ${path}`, 404);
  const isFile = statSync(path).isFile();
  if (isFile && !/\.onnx$/i.test(path)) {
    throw new TransferlabError('model_unservable', `${path} is a file but not an .onnx model; give an ONNX file (.onnx) or a TF.js layers model folder (model.json + weight files)`, 400);
  }
  if (!isFile && !isLayersFolder(path)) {
    throw new TransferlabError('model_missing', `no model in ${path}: it needs model.json (a TF.js layers model, with the weight files its manifest names)`, 404);
  }
  const names = (classes: number) => (opts.classesFile ? { classNames: readClassNames(opts.classesFile, classes) } : {});
  if (isFile) {
    const onnx = await loadOnnxClassifier(path, { layout: opts.layout, threads: opts.threads });
    try {
      const info: ServedModelInfo = { dataset: opts.dataset ?? null, inputShape: onnx.inputShape, classes: onnx.classes, ...names(onnx.classes) };
      return {
        format: 'onnx',
        info,
        weightsSha256: onnx.fileSha256,
        describe:
          `ONNX ${path}: input ${onnx.inputName} ${onnx.layout.toUpperCase()} (${onnx.layoutSource === 'model' ? 'from the model' : 'from --layout'}), ` +
          `${onnx.inputShape.join('×')}, ${onnx.classes} classes from output ${onnx.outputName}` +
          (onnx.fixedBatch ? `, fixed batch ${onnx.fixedBatch}` : ''),
        label: (images, count) => onnx.label(images, count),
        predict: (images, count) => onnx.predict(images, count),
        probabilitiesFrom: onnx.outputIsProbabilities ? `output ${onnx.outputName} (already probabilities)` : `softmax of output ${onnx.outputName}`,
        close: () => onnx.close(),
      };
    } catch (e) {
      await onnx.close();
      throw e;
    }
  }
  if (opts.layout) throw new TransferlabError('invalid_config', '--layout applies to ONNX models only; TF.js layers models are always channels-last (NHWC)');
  const folder = await loadLayersFolder(path);
  try {
    const own = folder.metadata !== undefined && typeof folder.metadata.arch === 'string';
    // metadata.json names its dataset as a string, or as a summary {name, classNames, …}.
    const recorded = folder.metadata?.dataset as unknown;
    const summary = recorded && typeof recorded === 'object' ? (recorded as { name?: unknown; classNames?: unknown }) : undefined;
    const dataset = opts.dataset ?? (typeof recorded === 'string' ? recorded : typeof summary?.name === 'string' ? summary.name : null);
    // victim:train records the names beside the dataset's name (metadata.classNames).
    const known = summary?.classNames ?? folder.metadata?.classNames;
    const datasetNames =
      !opts.classesFile && Array.isArray(known) && known.length === folder.classes && known.every((n) => typeof n === 'string') ? { classNames: known as string[] } : {};
    const info: ServedModelInfo = { dataset, inputShape: folder.inputShape, classes: folder.classes, ...datasetNames, ...names(folder.classes) };
    const predictor = tfjsPredictor(folder.model, folder.inputShape, folder.softmaxStripped);
    const accuracy = typeof folder.metadata?.testAccuracy === 'number' ? `, test accuracy ${folder.metadata.testAccuracy.toFixed(4)}` : '';
    return {
      format: own ? 'transferlab' : 'tfjs-layers',
      info,
      weightsSha256: folder.weightsSha256,
      describe:
        `${own ? `transferlab ${String(folder.metadata?.arch)}` : 'TF.js layers model'} ${path}: ${folder.inputShape.join('×')}, ${folder.classes} classes` +
        `${folder.softmaxStripped ? ' (softmax last layer)' : ''}${accuracy}, weights ${folder.weightFiles.join(', ')}`,
      ...(folder.metadata ? { metadata: folder.metadata } : {}),
      label: tfjsLabeler(folder.model, folder.inputShape),
      predict: async (images, count) => predictor(images, count),
      probabilitiesFrom: folder.softmaxStripped ? "the model's softmax output" : 'softmax of the logits',
      close: async () => folder.dispose(),
    };
  } catch (e) {
    folder.dispose();
    throw e;
  }
}
