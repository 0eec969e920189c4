/**
 * Saves a TF.js layers model in the file layout tensorflowjs_converter writes for a Keras model
 * (`--input_format keras`): model.json whose modelTopology wraps the Keras model_config, and the
 * weights split into shards named group1-shard{i}of{n}.bin (4 MB each by default, as the
 * converter's --weight_shard_size_bytes), no metadata.json. This is what a user brings.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export interface KerasLayoutOptions {
  /** Bytes per weight shard (default 4 MiB, the converter's default). */
  shardBytes?: number;
  /** End in softmax, as most Keras classifiers do: the last layer's activation becomes softmax. */
  softmax?: boolean;
}

export async function saveKerasLayout(model: tf.LayersModel, dir: string, opts: KerasLayoutOptions = {}): Promise<string[]> {
  const shardBytes = opts.shardBytes ?? 4 * 1024 * 1024;
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved?.weightData || !saved.weightSpecs) throw new Error('TF.js produced no weights');
  const data = Buffer.concat((Array.isArray(saved.weightData) ? saved.weightData : [saved.weightData]).map((b) => new Uint8Array(b)));
  const count = Math.max(1, Math.ceil(data.length / shardBytes));
  const paths = Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}.bin`);
  mkdirSync(dir, { recursive: true });
  paths.forEach((p, i) => writeFileSync(join(dir, p), data.subarray(i * shardBytes, (i + 1) * shardBytes)));
  const { keras_version: keras, backend, ...modelConfig } = saved.modelTopology as Record<string, unknown>;
  if (opts.softmax) {
    const layers = (modelConfig.config as { layers?: { config: { activation?: string } }[] }).layers;
    const last = layers?.at(-1);
    if (!last || last.config.activation === undefined) throw new Error('softmax: the last layer has no activation to set');
    last.config.activation = 'softmax';
  }
  const modelJson = {
    format: 'layers-model',
    generatedBy: `keras v${String(keras ?? 'unknown')}`,
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology: { keras_version: keras, backend, model_config: modelConfig },
    weightsManifest: [{ paths, weights: saved.weightSpecs }],
  };
  writeFileSync(join(dir, 'model.json'), JSON.stringify(modelJson));
  return paths;
}
