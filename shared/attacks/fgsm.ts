/**
 * FGSM (Goodfellow et al.): one step of ε along the gradient's sign, from the iterative base; and the
 * same images from a direction computed once, for an ε sweep.
 */
import * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.js';
import { fail } from './gradient.js';
import { iterate, type AttackOptions, type AttackResult } from './iterative.js';

/** Fast Gradient Sign Method (Goodfellow et al.): one step of size ε. */
export function fgsm(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  return iterate(model, x, labels, opts, { steps: 1, stepSize: opts.epsilon, decay: null, randomStart: false });
}

/**
 * FGSM from a direction already computed by `inputGradientSign`: the same images as `fgsm` for
 * any ε, so an ε sweep needs one gradient per image instead of one per ε.
 */
export function fgsmAlong(x: tf.Tensor4D, direction: tf.Tensor4D, epsilon: number, bounds: readonly [number, number]): AttackResult {
  if (!Number.isFinite(epsilon) || epsilon < 0) fail(`epsilon must be a finite number ≥ 0, got ${epsilon}`);
  if (direction.shape.join() !== x.shape.join()) fail(`direction shape ${direction.shape} differs from the images' ${x.shape}`);
  const raw = tf.tidy(() => tf.add<tf.Tensor4D>(x, tf.mul(direction, epsilon)));
  return { raw, clipped: tf.clipByValue(raw, bounds[0], bounds[1]) };
}

