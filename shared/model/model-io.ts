import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';

/**
 * Models on disk in the TF.js layers format (model.json + weights.bin, loadable by
 * tf.loadLayersModel) plus metadata.json. Written without tfjs-node's file:// handler, which
 * the wasm and cpu backends do not have.
 */
export interface ModelMetadata {
  arch: string;
  dataset: string;
  weightsSha256: string;
  [key: string]: unknown;
}

export const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

async function artifactsOf(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved) throw new TransferlabError('save_failed', 'TF.js produced no model artifacts', 500);
  return saved;
}

function weightBytes(artifacts: tf.io.ModelArtifacts): Uint8Array {
  const data = artifacts.weightData;
  if (!data) return new Uint8Array(0);
  const buffers = Array.isArray(data) ? data : [data];
  return Buffer.concat(buffers.map((b) => new Uint8Array(b)));
}

/** The files of a saved model, by name: what saveModel writes and loadModel reads. */
export type ModelFiles = Record<'model.json' | 'weights.bin' | 'metadata.json', Uint8Array | string>;
export const MODEL_FILE_NAMES = ['model.json', 'weights.bin', 'metadata.json'] as const;

/** A model and its metadata as the files of its folder, byte for byte what saveModel writes. */
export async function modelFiles(model: tf.LayersModel, metadata: Omit<ModelMetadata, 'weightsSha256'>): Promise<{ files: ModelFiles; metadata: ModelMetadata }> {
  const artifacts = await artifactsOf(model);
  const weights = weightBytes(artifacts);
  const full: ModelMetadata = { ...metadata, weightsSha256: sha256(weights) } as ModelMetadata;
  const modelJson = {
    modelTopology: artifacts.modelTopology,
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: 'transferlab',
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
  };
  return { files: { 'model.json': JSON.stringify(modelJson), 'weights.bin': weights, 'metadata.json': JSON.stringify(full, null, 2) + '\n' }, metadata: full };
}

/**
 * Save atomically: everything goes to a temporary sibling folder that is renamed into place,
 * so a failure never leaves a half-written folder that looks like a valid model.
 */
export async function saveModel(model: tf.LayersModel, dir: string, metadata: Omit<ModelMetadata, 'weightsSha256'>): Promise<ModelMetadata> {
  const { files, metadata: full } = await modelFiles(model, metadata);
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
  try {
    mkdirSync(tmp, { recursive: true });
    for (const name of MODEL_FILE_NAMES) writeFileSync(join(tmp, name), files[name]);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    mkdirSync(dirname(dir), { recursive: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const err = e as NodeJS.ErrnoException;
    throw new TransferlabError('model_write_failed', `cannot write the model to ${dir}: ${err.message}`, 500);
  }
  return full;
}

export function hasModel(dir: string): boolean {
  return MODEL_FILE_NAMES.every((f) => existsSync(join(dir, f)));
}

function parseMetadata(text: string, path: string): ModelMetadata {
  try {
    return JSON.parse(text) as ModelMetadata;
  } catch (e) {
    throw new TransferlabError('model_corrupt', `${path} is not valid JSON: ${(e as Error).message}`, 500);
  }
}

export function readMetadata(dir: string): ModelMetadata {
  const path = join(dir, 'metadata.json');
  if (!existsSync(path)) throw new TransferlabError('model_missing', `no model in ${dir} (metadata.json not found)`, 404);
  return parseMetadata(readFileSync(path, 'utf8'), path);
}

/** Load a model, refusing one whose weights do not match metadata.json's weightsSha256. */
export async function loadModel(dir: string): Promise<{ model: tf.LayersModel; metadata: ModelMetadata }> {
  return modelFromFiles((name) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : undefined), dir);
}

/** loadModel over any reader of a model folder's files; `where` names the folder in errors. */
export async function modelFromFiles(read: (name: string) => Uint8Array | undefined, where: string): Promise<{ model: tf.LayersModel; metadata: ModelMetadata }> {
  const [topology, weights, meta] = MODEL_FILE_NAMES.map(read);
  if (!topology || !weights || !meta) {
    throw new TransferlabError('model_missing', `no model in ${where}: it needs model.json, weights.bin and metadata.json`, 404);
  }
  const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  const metadata = parseMetadata(text(meta), join(where, 'metadata.json'));
  const digest = sha256(weights);
  if (digest !== metadata.weightsSha256) {
    throw new TransferlabError(
      'model_tampered',
      `weights in ${where} do not match metadata.json (sha256 ${digest.slice(0, 12)}…, expected ${String(metadata.weightsSha256).slice(0, 12)}…); retrain or restore the model`,
      500,
    );
  }
  const modelJson = JSON.parse(text(topology)) as {
    modelTopology: object;
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  const weightSpecs = modelJson.weightsManifest.flatMap((g) => g.weights);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer;
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData }));
  return { model, metadata };
}
