import * as tf from '@tensorflow/tfjs';
import { buildModel, checkArchitecture } from '../shared/architectures.js';
import { DEFAULT_DATASET, loadDataset, pixelCount, summarise, type Dataset } from '../shared/datasets/index.js';
import { fromLayers, labelImages } from '../shared/model.js';
import { accuracy } from '../shared/metrics.js';
import { loadModel, saveModel, type ModelMetadata } from '../shared/model-io.js';
import { seedGlobalRandom } from '../shared/random.js';
import { trainClassifier, type TrainOptions } from '../shared/training.js';
import { provenance } from '../shared/versions.js';
import { TransferlabError } from '../shared/errors.js';

/** Victim training: the target model trains on its dataset's training images only (MNIST: the 60,000). */
export interface VictimTrainConfig {
  arch: string;
  /** A built-in dataset name or a dataset folder (default mnist). */
  dataset?: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  out: string;
  /** Train on the first N training images only (tests and quick runs). */
  limit?: number;
  defence?: Record<string, unknown>;
  transformBatch?: TrainOptions['transformBatch'];
  /** Start from this saved model's weights instead of a fresh initialisation (fine-tuning; arch must match). */
  init?: string;
}

// Chosen so that paper-cnn passes the seed paper's 0.9894 test accuracy on real MNIST.
export const VICTIM_DEFAULTS = { arch: 'paper-cnn', epochs: 8, batchSize: 128, learningRate: 0.001, seed: 1, out: 'models/victim' };

export function validateTrainConfig(c: VictimTrainConfig): void {
  checkArchitecture(c.arch);
  const problems: string[] = [];
  if (!Number.isInteger(c.epochs) || c.epochs < 1) problems.push(`--epochs must be a positive integer (got ${c.epochs})`);
  if (!Number.isInteger(c.batchSize) || c.batchSize < 1) problems.push(`--batch-size must be a positive integer (got ${c.batchSize})`);
  if (!(c.learningRate > 0)) problems.push(`--learning-rate must be > 0 (got ${c.learningRate})`);
  if (!Number.isInteger(c.seed)) problems.push(`--seed must be an integer (got ${c.seed})`);
  if (c.limit !== undefined && (!Number.isInteger(c.limit) || c.limit < 1)) problems.push(`--limit must be a positive integer (got ${c.limit})`);
  if (problems.length) throw new TransferlabError('invalid_config', problems.join('; '));
}

/** Accuracy on the dataset's test images (all of them). */
export function evaluateAccuracy(model: tf.LayersModel, dataset: Dataset = loadDataset(DEFAULT_DATASET)): number {
  const test = dataset.test;
  return accuracy(labelImages(fromLayers(model), test.images, test.count), test.labels) ?? Number.NaN;
}

export async function trainVictim(
  c: VictimTrainConfig,
  hooks: Pick<TrainOptions, 'onBatchEnd' | 'onEpochEnd'> = {},
): Promise<ModelMetadata> {
  validateTrainConfig(c);
  seedGlobalRandom(c.seed);
  const dataset = loadDataset(c.dataset ?? DEFAULT_DATASET);
  const train = dataset.train;
  if (c.limit !== undefined && c.limit > train.count) {
    throw new TransferlabError('invalid_config', `--limit ${c.limit} exceeds the ${train.count} training images of ${dataset.name}`);
  }
  const n = c.limit ?? train.count;
  const start = c.init ? await loadModel(c.init) : undefined;
  if (start && start.metadata.arch !== c.arch) {
    throw new TransferlabError('invalid_config', `--init ${c.init} holds a ${start.metadata.arch}, not a ${c.arch}; pass --arch ${start.metadata.arch}`);
  }
  const shape = { inputShape: dataset.shape, classes: dataset.classes };
  const model = start?.model ?? buildModel(c.arch, shape);
  const summary = trainClassifier(model, train.images.subarray(0, n * pixelCount(dataset.shape)), train.labels.subarray(0, n), {
    epochs: c.epochs,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    seed: c.seed,
    transformBatch: c.transformBatch,
    ...hooks,
  });
  const testAccuracy = evaluateAccuracy(model, dataset);
  const { name, ...datasetInfo } = summarise(dataset);
  const metadata = await saveModel(model, c.out, {
    arch: c.arch,
    dataset: name,
    inputShape: datasetInfo.shape,
    classes: dataset.classes,
    classNames: dataset.classNames,
    datasetInfo,
    trainImages: n,
    epochs: c.epochs,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    testAccuracy,
    trainAccuracy: summary.accuracy,
    trainImagesPerSecond: Math.round(summary.imagesPerSecond),
    durationSeconds: Number(summary.durationSeconds.toFixed(1)),
    // A fine-tuned model's cost includes the model it started from.
    ...(start
      ? {
          initialisedFrom: { model: c.init, weightsSha256: start.metadata.weightsSha256, epochs: start.metadata.epochs, defence: start.metadata.defence ?? null },
          totalEpochs: Number(start.metadata.totalEpochs ?? start.metadata.epochs) + c.epochs,
          totalDurationSeconds: Number((Number(start.metadata.totalDurationSeconds ?? start.metadata.durationSeconds ?? 0) + summary.durationSeconds).toFixed(1)),
        }
      : {}),
    defence: c.defence ?? null,
    ...provenance(c.seed),
    createdAt: new Date().toISOString(),
  });
  model.dispose();
  return metadata;
}
