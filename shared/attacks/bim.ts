import type * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.js';
import { DEFAULT_STEPS, iterate, type AttackOptions, type AttackResult } from './iterative.js';

/** Basic Iterative Method (Kurakin et al.): FGSM repeated with projection. */
export function bim(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  const steps = opts.steps ?? DEFAULT_STEPS;
  const stepSize = opts.stepSize ?? (1.25 * opts.epsilon) / steps;
  return iterate(model, x, labels, opts, { steps, stepSize, decay: null, randomStart: opts.randomStart ?? false });
}
