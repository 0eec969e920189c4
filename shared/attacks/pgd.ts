import type * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.js';
import { DEFAULT_STEPS, iterate, type AttackOptions, type AttackResult } from './iterative.js';

/** Projected Gradient Descent (Madry et al.): BIM from a uniform random start in the ε-ball. */
export function pgd(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  const steps = opts.steps ?? DEFAULT_STEPS;
  const stepSize = opts.stepSize ?? (2.5 * opts.epsilon) / steps;
  return iterate(model, x, labels, opts, { steps, stepSize, decay: null, randomStart: opts.randomStart ?? true });
}
