import * as tf from '@tensorflow/tfjs';
import { MNIST_SHAPE, type ImageShape } from '../datasets/types.js';
import { TransferlabError } from '../errors.js';

/**
 * Model architectures by name, built for any input shape H×W×C and class count (the victim's, as
 * its dataset or /v1/info gives them). Every model ends in a linear dense layer emitting logits:
 * the softmax lives in the loss, so attacks can differentiate the logits directly.
 */
export interface ModelShape {
  inputShape: ImageShape;
  classes: number;
}

export const MNIST_MODEL: ModelShape = { inputShape: MNIST_SHAPE, classes: 10 };

type Builder = (s: ModelShape) => tf.Sequential;

const conv = (filters: number, kernelSize: number, input?: ImageShape) =>
  tf.layers.conv2d({ filters, kernelSize, activation: 'relu', ...(input ? { inputShape: [...input] } : {}) });
const pool = () => tf.layers.maxPooling2d({ poolSize: 2 });
const dense = (units: number, activation: 'relu' | 'linear') => tf.layers.dense({ units, activation });
/** A 4x4 stride-2 'same' convolution: 28 → 14 → 7, the downsampling Wong et al.'s MNIST nets use instead of pooling. */
const down = (filters: number, input?: ImageShape) =>
  tf.layers.conv2d({ filters, kernelSize: 4, strides: 2, padding: 'same', activation: 'relu', ...(input ? { inputShape: [...input] } : {}) });

const BUILDERS: Record<string, { describe: string; minSize: number; build: Builder }> = {
  'paper-cnn': {
    describe: "the seed paper's simple CNN: conv32 3x3 → pool → conv64 3x3 → pool → dropout 0.5 → dense (classes)",
    minSize: 10,
    build: (s) =>
      tf.sequential({
        layers: [conv(32, 3, s.inputShape), pool(), conv(64, 3), pool(), tf.layers.flatten(), tf.layers.dropout({ rate: 0.5 }), dense(s.classes, 'linear')],
      }),
  },
  lenet: {
    describe: 'a small, fast CNN for tests and quick runs: conv8 5x5 → pool → conv16 5x5 → pool → dense (classes)',
    minSize: 16,
    build: (s) =>
      tf.sequential({ layers: [conv(8, 5, s.inputShape), pool(), conv(16, 5), pool(), tf.layers.flatten(), dense(s.classes, 'linear')] }),
  },
  'substitute-cnn': {
    describe: 'the default substitute: conv32 3x3 → pool → conv64 3x3 → pool → dense 200 → dense (classes)',
    minSize: 10,
    build: (s) =>
      tf.sequential({
        layers: [conv(32, 3, s.inputShape), pool(), conv(64, 3), pool(), tf.layers.flatten(), dense(200, 'relu'), dense(s.classes, 'linear')],
      }),
  },
  // Robust training needs capacity: a model must fit the whole ε-ball around each digit, not just the digit.
  'wong-cnn': {
    describe: "Wong, Rice & Kolter's MNIST net for fast adversarial training: conv16 4x4 s2 → conv32 4x4 s2 → dense 100 → dense (classes)",
    minSize: 8,
    build: (s) => tf.sequential({ layers: [down(16, s.inputShape), down(32), tf.layers.flatten(), dense(100, 'relu'), dense(s.classes, 'linear')] }),
  },
  'wong-wide': {
    describe: 'the default for adversarial training: Wong et al.\'s net with twice the filters and a wider dense layer: conv32 4x4 s2 → conv64 4x4 s2 → dense 256 → dense (classes)',
    minSize: 8,
    build: (s) => tf.sequential({ layers: [down(32, s.inputShape), down(64), tf.layers.flatten(), dense(256, 'relu'), dense(s.classes, 'linear')] }),
  },
  'madry-cnn': {
    describe: "Madry et al.'s MNIST net: conv32 5x5 same → pool → conv64 5x5 same → pool → dense 1024 → dense (classes)",
    minSize: 8,
    build: (s) =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ filters: 32, kernelSize: 5, padding: 'same', activation: 'relu', inputShape: [...s.inputShape] }), pool(),
          tf.layers.conv2d({ filters: 64, kernelSize: 5, padding: 'same', activation: 'relu' }), pool(),
          tf.layers.flatten(), dense(1024, 'relu'), dense(s.classes, 'linear'),
        ],
      }),
  },
  'papernot-mlp': {
    describe: "cleverhans' substitute: H·W·C → 200 → 200 → classes, ReLU",
    minSize: 1,
    build: (s) =>
      tf.sequential({
        layers: [tf.layers.flatten({ inputShape: [...s.inputShape] }), dense(200, 'relu'), dense(200, 'relu'), dense(s.classes, 'linear')],
      }),
  },
};

export const ARCHITECTURES = Object.keys(BUILDERS);

export function checkArchitecture(name: string): void {
  if (!(name in BUILDERS)) {
    throw new TransferlabError('unknown_architecture', `unknown architecture "${name}"; valid: ${ARCHITECTURES.join(', ')}`);
  }
}

/** Refuse a shape the architecture cannot take (its convolutions and pools would shrink the image to nothing). */
export function checkModelShape(name: string, s: ModelShape): void {
  checkArchitecture(name);
  const [h, w, c] = s.inputShape;
  const { minSize } = BUILDERS[name];
  if (![h, w, c].every((d) => Number.isInteger(d) && d > 0)) {
    throw new TransferlabError('invalid_shape', `input shape ${s.inputShape.join('×')} is not H×W×C with positive integers`);
  }
  if (Math.min(h, w) < minSize) {
    throw new TransferlabError('invalid_shape', `${name} needs images of at least ${minSize}×${minSize}; these are ${h}×${w} (use papernot-mlp, or larger images)`);
  }
  if (!Number.isInteger(s.classes) || s.classes < 2) throw new TransferlabError('invalid_shape', `a classifier needs at least 2 classes, got ${s.classes}`);
}

/** A fresh, randomly initialised model (seed it with seedGlobalRandom first for repeatability). */
export function buildModel(name: string, shape: ModelShape = MNIST_MODEL): tf.Sequential {
  checkModelShape(name, shape);
  return BUILDERS[name].build(shape);
}
