/**
 * Distillation from a victim that answers scores (Hinton, Vinyals & Dean 2015; the Knockoff / Copycat
 * setting): the substitute is fitted to the victim's probabilities instead of its top-1 label.
 *
 * - Targets: each row of the victim's scores with NaN (a class a top-k answer left out) read as 0 mass,
 *   renormalised over what was given, then softened by the temperature T — q ∝ p^(1/T), i.e.
 *   softmax(log p / T). A top-1 answer renormalises to its label's one-hot: label training again.
 * - Loss: cross-entropy H(q, softmax(z / T)) on the substitute's logits z, the same T on both sides;
 *   its gradient in z is (softmax(z / T) − q) / T per image (mean over the batch). Label smoothing, when
 *   set, mixes q with the uniform distribution as it does a one-hot target.
 */
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';

/**
 * count × classes training targets from the victim's scores (count × classes, NaN = not given).
 * A row that gives no mass at all (every given score rounded to 0) falls back to its label's one-hot.
 */
export function softTargets(scores: Float32Array, labels: ArrayLike<number>, classes: number, temperature = 1): Float32Array {
  const count = labels.length;
  if (scores.length !== count * classes) {
    throw new TransferlabError('invalid_training_data', `${scores.length} scores for ${count} images of ${classes} classes`);
  }
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new TransferlabError('invalid_config', `temperature must be a finite number > 0, got ${temperature}`);
  const out = new Float32Array(count * classes);
  const row = new Float64Array(classes);
  for (let i = 0; i < count; i++) {
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const v = scores[i * classes + k];
      // Scores are probabilities: a negative or missing one carries no mass.
      row[k] = Number.isFinite(v) && v > 0 ? v : 0;
      sum += row[k];
    }
    if (sum <= 0) {
      out[i * classes + labels[i]] = 1;
      continue;
    }
    // p^(1/T) after renormalising; computed from the largest entry so small rows do not underflow.
    const top = Math.max(...row) / sum;
    let soft = 0;
    for (let k = 0; k < classes; k++) {
      row[k] = row[k] > 0 ? Math.exp(Math.log(row[k] / sum / top) / temperature) : 0;
      soft += row[k];
    }
    for (let k = 0; k < classes; k++) out[i * classes + k] = row[k] / soft;
  }
  return out;
}

/** H(q, softmax(logits / T)) averaged over the batch, with optional label smoothing of q. */
export function distillationLoss(targets: tf.Tensor2D, logits: tf.Tensor2D, temperature = 1, smoothing = 0): tf.Scalar {
  const scaled = temperature === 1 ? logits : tf.div(logits, temperature);
  return tf.losses.softmaxCrossEntropy(targets, scaled, undefined, smoothing) as tf.Scalar;
}
