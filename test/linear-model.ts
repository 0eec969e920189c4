import * as tf from '@tensorflow/tfjs';
import type { Model } from '../shared/model/model.js';

/** A 4-pixel, 3-class linear model z = x·W: every attack loss's input gradient can be written out by hand. */
export const W = [
  [0.5, -1.0, 0.2],
  [-0.3, 0.8, -0.6],
  [1.1, 0.1, -0.9],
  [-0.7, -0.4, 1.3],
];
export const linear: Model = {
  bounds: [0, 1],
  inputShape: [2, 2, 1],
  logits: (x) => tf.matMul(tf.reshape(x, [x.shape[0], 4]), tf.tensor2d(W)),
};
