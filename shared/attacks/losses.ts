import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';
import type { Model } from '../model/model.js';

/**
 * The objectives an attack climbs, on logits z, summed over the batch (so an image's gradient does not
 * depend on its batch-mates):
 *
 *   ce      untargeted  −log softmax(z)[y]                targeted  log softmax(z)[t]
 *   margin  untargeted  max_{j≠y} z_j − z_y               targeted  z_t − max_{j≠t} z_j
 *
 * The margin is Carlini–Wagner's loss without its confidence cap: it keeps pushing on images the
 * softmax already calls certain (cross-entropy's gradient vanishes there), and it only looks at the
 * two classes that decide the label, which is what another model's decision also turns on.
 */
export type CraftingLoss = 'ce' | 'margin';
export const CRAFTING_LOSSES: readonly CraftingLoss[] = ['ce', 'margin'];

/**
 * How an ensemble of substitutes is attacked: `logits` differentiates the loss of the members' mean
 * logits (one model whose logits are the average); `loss` averages the members' own losses.
 */
export type EnsembleCombine = 'logits' | 'loss';

/** A model made of members; its `logits` are the members' mean, its attack objective per `combine`. */
export interface EnsembleModel extends Model {
  readonly members: readonly Model[];
  readonly combine: EnsembleCombine;
}

export function isEnsemble(model: Model): model is EnsembleModel {
  return Array.isArray((model as Partial<EnsembleModel>).members);
}

/** Subtracted from the excluded class so that it can never be the max of the others. */
const EXCLUDE = 1e9;

/** The ascent objective of one batch of logits: see the module comment. */
export function objectiveFromLogits(raw: tf.Tensor2D, y: tf.Tensor1D, targeted: boolean, loss: CraftingLoss, temperature = 1): tf.Scalar {
  return tf.tidy(() => {
    const logits = temperature === 1 ? raw : tf.div<tf.Tensor2D>(raw, temperature);
    const onehot = tf.cast(tf.oneHot(y, logits.shape[1]), 'float32');
    if (loss === 'margin') {
      const own = tf.sum(tf.mul(onehot, logits), 1);
      const other = tf.max(tf.sub(logits, tf.mul(onehot, EXCLUDE)), 1);
      return tf.sum(targeted ? tf.sub(own, other) : tf.sub(other, own)) as tf.Scalar;
    }
    const ce = tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits))));
    return (targeted ? tf.neg(ce) : ce) as tf.Scalar;
  });
}

/**
 * The ascent objective of a model on x; an ensemble that combines losses averages its members'.
 * `temperature` divides the logits first: for cross-entropy a large T spreads the gradient's weight
 * evenly over the other classes instead of the few the softmax favours (the margin only changes scale).
 */
export function attackObjective(model: Model, x: tf.Tensor4D, y: tf.Tensor1D, targeted: boolean, loss: CraftingLoss, temperature = 1): tf.Scalar {
  if (isEnsemble(model) && model.combine === 'loss') {
    const parts = model.members.map((m) => objectiveFromLogits(m.logits(x), y, targeted, loss, temperature));
    return tf.div(tf.addN(parts), parts.length) as tf.Scalar;
  }
  return objectiveFromLogits(model.logits(x), y, targeted, loss, temperature);
}

/**
 * One model from several: its logits (and so its labels) are the members' mean; attacks on it
 * differentiate either that mean or the mean of the members' losses, per `combine`.
 */
export function ensembleOf(members: readonly Model[], combine: EnsembleCombine = 'logits'): EnsembleModel {
  if (members.length === 0) throw new TransferlabError('bad_attack_input', 'an ensemble needs at least one member');
  const [lo, hi] = members[0].bounds;
  if (members.some((m) => m.bounds[0] !== lo || m.bounds[1] !== hi)) {
    throw new TransferlabError('bad_attack_input', 'ensemble members must share their input bounds');
  }
  return {
    bounds: [lo, hi],
    inputShape: members[0].inputShape,
    members,
    combine,
    logits: (x) => (members.length === 1 ? members[0].logits(x) : (tf.div(tf.addN(members.map((m) => m.logits(x))), members.length) as tf.Tensor2D)),
  };
}

/** Keeps the DLR ratio finite when the top logits tie (the authors' constant). */
const DLR_FLOOR = 1e-12;

/**
 * Croce & Hein (2020)'s Difference of Logits Ratio, per image, as the attacker ascends it, on logits z
 * with π the classes sorted by decreasing logit:
 *
 *   untargeted  −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)
 *   targeted    −(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2)
 *
 * The denominator makes it invariant to shifting and rescaling the logits, so a model cannot hide
 * behind large or flat logits as it can from cross-entropy; it is > 0 exactly when the label lost.
 * The ranks π only choose which logits to take (no gradient flows through the ranking): each is read
 * back through a one-hot mask, so the loss stays differentiable in z. Needs ≥ 3 classes (targeted ≥ 4).
 */
export function dlrLoss(logits: tf.Tensor2D, y: tf.Tensor1D, target?: tf.Tensor1D): tf.Tensor1D {
  const classes = logits.shape[1];
  if (classes < (target ? 4 : 3)) throw new TransferlabError('bad_attack_input', `the ${target ? 'targeted ' : ''}DLR loss needs at least ${target ? 4 : 3} classes, the model has ${classes}`);
  return tf.tidy(() => {
    const pick = (cls: tf.Tensor1D) => tf.sum(tf.mul(tf.cast(tf.oneHot(cls, classes), 'float32'), logits), 1) as tf.Tensor1D;
    // The top logits in order, by repeated argmax (TopK has no gradient in TF.js; argmax's is zero).
    const top: tf.Tensor1D[] = [];
    let rest: tf.Tensor2D = logits;
    for (let r = 0; r < (target ? 4 : 3); r++) {
      const cls = tf.argMax(rest, 1) as tf.Tensor1D;
      top.push(pick(cls));
      rest = tf.sub<tf.Tensor2D>(rest, tf.mul(tf.cast(tf.oneHot(cls, classes), 'float32'), EXCLUDE));
    }
    const rank = (r: number) => top[r];
    const own = pick(y);
    if (target) {
      const scale = tf.add(tf.sub(rank(0), tf.mul(tf.add(rank(2), rank(3)), 0.5)), DLR_FLOOR);
      return tf.neg(tf.div(tf.sub(own, pick(target)), scale)) as tf.Tensor1D;
    }
    const other = tf.max(tf.sub(logits, tf.mul(tf.cast(tf.oneHot(y, classes), 'float32'), EXCLUDE)), 1);
    return tf.neg(tf.div(tf.sub(own, other), tf.add(tf.sub(rank(0), rank(2)), DLR_FLOOR))) as tf.Tensor1D;
  });
}

/** Softmax cross-entropy of the label, per image (APGD-CE's objective). */
export function crossEntropyPerImage(logits: tf.Tensor2D, y: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(tf.cast(tf.oneHot(y, logits.shape[1]), 'float32'), tf.logSoftmax(logits)), 1)) as tf.Tensor1D);
}
