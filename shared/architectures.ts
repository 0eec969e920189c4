import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from './errors.js';

/**
 * Model architectures by name. Every model ends in a linear dense layer emitting logits:
 * the softmax lives in the loss, so attacks can differentiate the logits directly.
 */
type Builder = () => tf.Sequential;

const inputShape = [28, 28, 1];

const conv = (filters: number, kernelSize: number, first = false) =>
  tf.layers.conv2d({ filters, kernelSize, activation: 'relu', ...(first ? { inputShape } : {}) });
const pool = () => tf.layers.maxPooling2d({ poolSize: 2 });
const dense = (units: number, activation: 'relu' | 'linear') => tf.layers.dense({ units, activation });

const BUILDERS: Record<string, { describe: string; build: Builder }> = {
  'paper-cnn': {
    describe: "the seed paper's simple CNN: conv32 3x3 → pool → conv64 3x3 → pool → dropout 0.5 → dense 10",
    build: () =>
      tf.sequential({
        layers: [conv(32, 3, true), pool(), conv(64, 3), pool(), tf.layers.flatten(), tf.layers.dropout({ rate: 0.5 }), dense(10, 'linear')],
      }),
  },
  lenet: {
    describe: 'a small, fast CNN for tests and quick runs: conv8 5x5 → pool → conv16 5x5 → pool → dense 10',
    build: () =>
      tf.sequential({ layers: [conv(8, 5, true), pool(), conv(16, 5), pool(), tf.layers.flatten(), dense(10, 'linear')] }),
  },
  'substitute-cnn': {
    describe: 'the default substitute: conv32 3x3 → pool → conv64 3x3 → pool → dense 200 → dense 10',
    build: () =>
      tf.sequential({
        layers: [conv(32, 3, true), pool(), conv(64, 3), pool(), tf.layers.flatten(), dense(200, 'relu'), dense(10, 'linear')],
      }),
  },
  'papernot-mlp': {
    describe: "cleverhans' substitute: 784 → 200 → 200 → 10, ReLU",
    build: () =>
      tf.sequential({
        layers: [tf.layers.flatten({ inputShape }), dense(200, 'relu'), dense(200, 'relu'), dense(10, 'linear')],
      }),
  },
};

export const ARCHITECTURES = Object.keys(BUILDERS);

export function checkArchitecture(name: string): void {
  if (!(name in BUILDERS)) {
    throw new TransferlabError('unknown_architecture', `unknown architecture "${name}"; valid: ${ARCHITECTURES.join(', ')}`);
  }
}

/** A fresh, randomly initialised model (seed it with seedGlobalRandom first for repeatability). */
export function buildModel(name: string): tf.Sequential {
  checkArchitecture(name);
  return BUILDERS[name].build();
}
