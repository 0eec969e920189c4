import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';
import type { Model } from './model.js';
import { sha256, type ModelMetadata } from './model-io.js';

/**
 * Any TF.js layers model folder: the project's own (model.json + weights.bin + metadata.json) or
 * what tfjs-converter writes from Keras (model.json + the weight shards its manifest names, any
 * names, no metadata). Checked here, once, for what the victim and the white-box baseline need: one
 * image input of fixed H×W×C, one output of class scores. A softmax last layer is kept for labels
 * but stripped for gradients, since differentiating through a saturated softmax gives near-zero
 * gradients and would weaken gradient attacks without any visible error.
 */
export interface LayersFolder {
  /** The model as given (labels: argmax of its output, softmax or not). */
  model: tf.LayersModel;
  /** The same weights up to the logits: `model` itself when it has no softmax last layer. */
  logits: Model;
  softmaxStripped: boolean;
  inputShape: [number, number, number];
  classes: number;
  /** sha256 of the weight bytes, in manifest order (equal to metadata.weightsSha256 for the project's folders). */
  weightsSha256: string;
  weightFiles: string[];
  /** metadata.json when the folder has one (the project's own models). */
  metadata?: ModelMetadata;
  dispose(): void;
}

const unservable = (message: string) => new TransferlabError('model_unservable', message, 400);

const SUPPORTED =
  'supported: one image input of fixed shape [height, width, channels] (channels last, pixels in [0, 1]) and one output of class scores [classes] (logits or softmax)';

interface ModelJson {
  format?: string;
  modelTopology?: Record<string, unknown>;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

function readModelJson(dir: string): ModelJson {
  const path = join(dir, 'model.json');
  let doc: ModelJson;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as ModelJson;
  } catch (e) {
    throw new TransferlabError('model_corrupt', `${path} is not valid JSON: ${(e as Error).message}`, 400);
  }
  if (doc.format === 'graph-model' || (doc.modelTopology && 'node' in doc.modelTopology)) {
    throw unservable(
      `${path} is a TF.js graph model (tensorflowjs_converter --output_format tfjs_graph_model); the victim serves layers models: ` +
        'convert from Keras with --input_format keras (the default output is a layers model), or export to ONNX',
    );
  }
  if (!doc.modelTopology || !Array.isArray(doc.weightsManifest)) {
    throw new TransferlabError('model_corrupt', `${path} has no modelTopology and weightsManifest: not a TF.js layers model`, 400);
  }
  return doc;
}

/** The manifest's weight files, in order, each inside the folder. */
function readWeights(dir: string, manifest: NonNullable<ModelJson['weightsManifest']>): { files: string[]; data: Buffer } {
  const files = manifest.flatMap((g) => g.paths);
  const buffers = files.map((name) => {
    const path = normalize(join(dir, name));
    if (isAbsolute(name) || !path.startsWith(normalize(dir) + sep)) {
      throw new TransferlabError('model_corrupt', `model.json names the weight file "${name}" outside ${dir}; the manifest's paths must be relative to the folder`, 400);
    }
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new TransferlabError('model_corrupt', `model.json names the weight file ${name}, which is not in ${dir}`, 400);
    }
    return readFileSync(path);
  });
  return { files, data: Buffer.concat(buffers) };
}

/** [h, w, c] of the single image input, or a start-up error saying what is wrong. */
function imageInput(model: tf.LayersModel, dir: string): [number, number, number] {
  if (model.inputs.length !== 1) throw unservable(`the model in ${dir} has ${model.inputs.length} inputs; ${SUPPORTED}`);
  const shape = model.inputs[0].shape;
  if (shape.length !== 4) {
    throw unservable(`the model in ${dir} takes input of shape [${shape.map(String).join(', ')}], not images [batch, height, width, channels]; ${SUPPORTED}`);
  }
  const dims = shape.slice(1);
  if (dims.some((d) => d === null || d <= 0)) {
    throw unservable(`the model in ${dir} has a dynamic image size [${dims.map(String).join(', ')}]; ${SUPPORTED}`);
  }
  return dims as [number, number, number];
}

function scoresOutput(model: tf.LayersModel, dir: string): number {
  if (model.outputs.length !== 1) throw unservable(`the model in ${dir} has ${model.outputs.length} outputs; ${SUPPORTED}`);
  const shape = model.outputs[0].shape;
  if (shape.length !== 2 || shape[1] === null || shape[1] < 2) {
    throw unservable(`the model in ${dir} outputs shape [${shape.map(String).join(', ')}], not class scores [batch, classes ≥ 2]; ${SUPPORTED}`);
  }
  return shape[1];
}

/**
 * The logits below a softmax last layer: a separate Softmax/Activation layer is cut off; a layer
 * with a softmax activation is rebuilt from the same topology with a linear one.
 */
async function logitsModel(model: tf.LayersModel, topology: Record<string, unknown>, load: (t: object) => Promise<tf.LayersModel>): Promise<tf.LayersModel | undefined> {
  const last = model.outputs[0].sourceLayer;
  const config = last.getConfig() as { activation?: unknown; axis?: unknown };
  const cls = last.getClassName();
  if (cls === 'Softmax' || (cls === 'Activation' && config.activation === 'softmax')) {
    return tf.model({ inputs: model.inputs, outputs: last.input as tf.SymbolicTensor });
  }
  if (config.activation !== 'softmax') return undefined;
  const edited = JSON.parse(JSON.stringify(topology)) as Record<string, unknown>;
  let found = false;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      const n = node as { config?: { name?: string; activation?: string } };
      if (n.config?.name === last.name && n.config.activation === 'softmax') {
        n.config.activation = 'linear';
        found = true;
      }
      Object.values(node).forEach(visit);
    }
  };
  visit(edited);
  if (!found) throw unservable(`cannot find the softmax layer ${last.name} in the model's topology to take logits below it`);
  return load(edited);
}

function explainLoadError(e: unknown, dir: string): TransferlabError {
  const msg = e instanceof Error ? e.message : String(e);
  if (/Unknown (layer|activation|regularizer|initializer|constraint)/i.test(msg)) {
    return unservable(`TF.js cannot build the model in ${dir}: ${msg.split('\n')[0].slice(0, 200)}. Custom Keras layers are not supported; TF.js layers are (Conv2D, Dense, pooling, BatchNormalization, …), or export the model to ONNX`);
  }
  return new TransferlabError('model_corrupt', `TF.js cannot load the model in ${dir}: ${msg.split('\n')[0].slice(0, 300)}`, 400);
}

export function isLayersFolder(dir: string): boolean {
  return existsSync(join(dir, 'model.json'));
}

/** Load and check a layers model folder; the project's own folders must also match metadata.json's weightsSha256. */
export async function loadLayersFolder(dir: string): Promise<LayersFolder> {
  const doc = readModelJson(dir);
  const { files, data } = readWeights(dir, doc.weightsManifest ?? []);
  const weightsSha256 = sha256(data);
  let metadata: ModelMetadata | undefined;
  if (existsSync(join(dir, 'metadata.json'))) {
    try {
      metadata = JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8')) as ModelMetadata;
    } catch (e) {
      throw new TransferlabError('model_corrupt', `${join(dir, 'metadata.json')} is not valid JSON: ${(e as Error).message}`, 400);
    }
    if (typeof metadata.weightsSha256 === 'string' && metadata.weightsSha256 !== weightsSha256) {
      throw new TransferlabError(
        'model_tampered',
        `weights in ${dir} do not match metadata.json (sha256 ${weightsSha256.slice(0, 12)}…, expected ${metadata.weightsSha256.slice(0, 12)}…); retrain or restore the model`,
        500,
      );
    }
  }
  const weightSpecs = (doc.weightsManifest ?? []).flatMap((g) => g.weights);
  const weightData = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const load = async (modelTopology: object) => {
    try {
      return await tf.loadLayersModel(tf.io.fromMemory({ modelTopology, weightSpecs, weightData }));
    } catch (e) {
      throw explainLoadError(e, dir);
    }
  };
  const topology = doc.modelTopology as Record<string, unknown>;
  const model = await load(topology);
  try {
    const inputShape = imageInput(model, dir);
    const classes = scoresOutput(model, dir);
    const below = await logitsModel(model, topology, load);
    const logitsLayers = below ?? model;
    return {
      model,
      logits: { bounds: [0, 1], inputShape, logits: (x) => logitsLayers.apply(x, { training: false }) as tf.Tensor2D },
      softmaxStripped: below !== undefined,
      inputShape,
      classes,
      weightsSha256,
      weightFiles: files,
      ...(metadata ? { metadata } : {}),
      dispose() {
        model.dispose();
        // A cut-off Softmax shares model's layers; only a rebuilt copy owns weights of its own.
        if (below && below.layers.every((l) => !model.layers.includes(l))) below.dispose();
      },
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
