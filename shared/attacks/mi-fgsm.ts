import type * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.js';
import { DEFAULT_STEPS, iterate, type AttackOptions, type AttackResult } from './iterative.js';

/** Momentum Iterative FGSM (Dong et al.): g ← μ·g + ∇/‖∇‖₁ per image, step along sign(g). */
export function miFgsm(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  const steps = opts.steps ?? DEFAULT_STEPS;
  const stepSize = opts.stepSize ?? opts.epsilon / steps;
  const decay = opts.decay ?? 1;
  return iterate(model, x, labels, opts, { steps, stepSize, decay, randomStart: opts.randomStart ?? false });
}
