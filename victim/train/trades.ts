import * as tf from '@tensorflow/tfjs';

/**
 * TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and Accuracy"),
 * written after the authors' reference (github yaodongyu/TRADES, trades.py `trades_loss`):
 *   min  CE(f(x), y) + β · KL(f(x) ‖ f(x')) / n,   x' = argmax over the ε-ball of KL(f(x) ‖ f(x'))
 * The KL term asks the model to answer the same around every input instead of fitting attacked copies to
 * their labels, which smooths it where gradient-masked models are sharp.
 */
export interface TradesSettings {
  epsilon: number;
  /** Sign steps of the inner maximisation (the reference's MNIST script: 40). */
  steps: number;
  stepSize: number;
  /** Weight of the KL term (1/λ in the paper). */
  beta: number;
  /** Seeds the start's Gaussian noise. */
  seed: number;
}

/** The reference's start: the image plus 0.001·N(0, 1), a nudge off x where the KL's gradient is exactly 0. */
export const TRADES_START_NOISE = 0.001;

/** Σ over the batch of KL(p ‖ q), from log-probabilities (the reference's KLDivLoss with sum reduction). */
export function klSum(logP: tf.Tensor2D, logQ: tf.Tensor2D): tf.Scalar {
  return tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)));
}

/**
 * The inner maximisation: sign steps of α up the gradient of Σ KL(f(x) ‖ f(x')), each projected to the
 * ε-ball around x and to [0, 1]. The model answers in inference mode, as the reference's model.eval();
 * f(x) is a constant here (the reference recomputes it every step; it cannot change between them).
 */
export function tradesAttack(model: tf.LayersModel, x: tf.Tensor4D, s: Omit<TradesSettings, 'beta'>): tf.Tensor4D {
  // apply, not predict: predict cuts the batch into chunks of 32 (its default batch size) on every step.
  const logits = (input: tf.Tensor) => model.apply(input, { training: false }) as tf.Tensor2D;
  return tf.tidy(() => {
    const logP = tf.logSoftmax(logits(x)) as tf.Tensor2D;
    const lower = tf.maximum(tf.sub(x, s.epsilon), 0);
    const upper = tf.minimum(tf.add(x, s.epsilon), 1);
    const gradOf = tf.grad((xa: tf.Tensor) => klSum(logP, tf.logSoftmax(logits(xa)) as tf.Tensor2D));
    let xa = tf.add(x, tf.mul(tf.randomNormal(x.shape, 0, 1, 'float32', s.seed), TRADES_START_NOISE)) as tf.Tensor4D;
    for (let k = 0; k < s.steps; k++) {
      const next = tf.tidy(() => tf.minimum(tf.maximum(tf.add(xa, tf.mul(tf.sign(gradOf(xa)), s.stepSize)), lower), upper) as tf.Tensor4D);
      xa.dispose();
      xa = next;
    }
    // With no steps the start alone must still lie in the box.
    return tf.minimum(tf.maximum(xa, lower), upper) as tf.Tensor4D;
  });
}

/**
 * The outer loss, given the training-mode logits of the clean batch: mean CE on them plus β · Σ KL / n
 * against the training-mode logits of the attacked batch. As in the reference, f(x) is not detached, so
 * the KL's gradient reaches the weights through the clean branch as well as the attacked one.
 */
export function tradesLoss(model: tf.LayersModel, xAdv: tf.Tensor4D, labels: tf.Tensor1D, beta: number, cleanLogits: tf.Tensor2D): { loss: tf.Scalar; scored: tf.Tensor2D } {
  const n = labels.shape[0];
  const advLogits = model.apply(xAdv, { training: true }) as tf.Tensor2D;
  const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(labels, cleanLogits.shape[1]), cleanLogits);
  const kl = klSum(tf.logSoftmax(cleanLogits) as tf.Tensor2D, tf.logSoftmax(advLogits) as tf.Tensor2D);
  return { loss: tf.add(ce, tf.mul(kl, beta / n)) as tf.Scalar, scored: advLogits };
}
