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
/** A 4x4 stride-2 'same' convolution: 28 → 14 → 7, the downsampling Wong et al.'s MNIST nets use instead of pooling. */
const down = (filters: number, first = false) =>
  tf.layers.conv2d({ filters, kernelSize: 4, strides: 2, padding: 'same', activation: 'relu', ...(first ? { inputShape } : {}) });

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
  // Robust training needs capacity: a model must fit the whole ε-ball around each digit, not just the digit.
  'wong-cnn': {
    describe: "Wong, Rice & Kolter's MNIST net for fast adversarial training: conv16 4x4 s2 → conv32 4x4 s2 → dense 100 → dense 10",
    build: () => tf.sequential({ layers: [down(16, true), down(32), tf.layers.flatten(), dense(100, 'relu'), dense(10, 'linear')] }),
  },
  'wong-wide': {
    describe: 'the default for adversarial training: Wong et al.\'s net with twice the filters and a wider dense layer: conv32 4x4 s2 → conv64 4x4 s2 → dense 256 → dense 10',
    build: () => tf.sequential({ layers: [down(32, true), down(64), tf.layers.flatten(), dense(256, 'relu'), dense(10, 'linear')] }),
  },
  'madry-cnn': {
    describe: "Madry et al.'s MNIST net: conv32 5x5 same → pool → conv64 5x5 same → pool → dense 1024 → dense 10",
    build: () =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ filters: 32, kernelSize: 5, padding: 'same', activation: 'relu', inputShape }), pool(),
          tf.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }), pool(),
          tf.layers.flatten(), dense(1024, 'relu'), dense(10, 'linear'),
        ],
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

export function describeArchitecture(name: string): string {
  checkArchitecture(name);
  return BUILDERS[name].describe;
}

/** A fresh, randomly initialised model (seed it with seedGlobalRandom first for repeatability). */
export function buildModel(name: string): tf.Sequential {
  checkArchitecture(name);
  return BUILDERS[name].build();
}
