/**
 * The base of the iterative L∞ attacks (BIM, PGD, MI-FGSM, and FGSM as one step): a Plan gives the
 * steps, their size, the step direction and the start; the loss and the gradient's transforms come from
 * the options (gradient.ts). Semantics in index.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.js';
import { ascentGradient, checkBatchSize, checkClassRange, checkLabels, DEFAULT_BATCH, fail, forChunk, gradientSpec, mapChunks, type GradientOptions } from './gradient.js';

export interface AttackOptions extends GradientOptions {
  /** L∞ radius, in the model's input units. */
  epsilon: number;
  /** Target class per image; the attack is targeted exactly when this is given. */
  targets?: Int32Array;
  /** Iterations for bim, pgd and mi-fgsm (default 10). */
  steps?: number;
  /** Per-step size; defaults depend on the attack (see the module comment). */
  stepSize?: number;
  /** MI-FGSM momentum decay μ (default 1). */
  decay?: number;
  /** Uniform random start in the ε-ball (default: true for pgd, false otherwise). */
  randomStart?: boolean;
  /**
   * The random start's offsets, one per pixel of x (default: randomStartOffsets(x's shape, ε, seed)). A
   * caller that attacks a batch in parts passes each part its slice of the whole batch's offsets, so
   * that the parts together give exactly what the whole batch gives.
   */
  startOffsets?: tf.Tensor4D;
  /** Images per internal batch, to bound memory (default 500). */
  batchSize?: number;
}

export interface AttackResult {
  /** The last step before projection; may lie outside the bounds. */
  raw: tf.Tensor4D;
  /** Within `model.bounds` and within ε of x in L∞. */
  clipped: tf.Tensor4D;
}

export const DEFAULT_STEPS = 10;

/** The random start's offsets: uniform in [−ε, ε] per pixel, drawn from `seed`. */
export const randomStartOffsets = (shape: [number, number, number, number], epsilon: number, seed: number): tf.Tensor4D =>
  tf.randomUniform(shape, -epsilon, epsilon, 'float32', seed);
/** Keeps the per-image L1 normalisation of MI-FGSM finite when a gradient vanishes. */
const L1_FLOOR = 1e-12;

/** An iterative attack: its steps, their size, the step direction (the gradient's sign, or MI-FGSM's momentum's) and the start. */
export interface Plan {
  steps: number;
  stepSize: number;
  /** Momentum decay; null means plain sign-of-gradient steps. */
  decay: number | null;
  randomStart: boolean;
}

/**
 * The shared engine: iterated sign steps with projection, optionally with momentum and a random start.
 * Each iteration: the ascent gradient (gradient.ts: the loss, DI, TI), a step along the sign of it
 * or of the momentum, then the projection onto the L∞ ball ∩ the model's bounds.
 */
export function iterate(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions, plan: Plan): AttackResult {
  const n = x.shape[0];
  const eps = opts.epsilon;
  if (!Number.isFinite(eps) || eps < 0) fail(`epsilon must be a finite number ≥ 0, got ${eps}`);
  if (!Number.isInteger(plan.steps) || plan.steps < 1) fail(`steps must be a positive integer, got ${plan.steps}`);
  if (!Number.isFinite(plan.stepSize) || plan.stepSize < 0) fail(`stepSize must be finite and ≥ 0, got ${plan.stepSize}`);
  if (plan.decay !== null && (!Number.isFinite(plan.decay) || plan.decay < 0)) {
    fail(`decay must be finite and ≥ 0, got ${plan.decay}`);
  }
  checkLabels('labels', labels, n);
  const targeted = opts.targets !== undefined;
  if (opts.targets) checkLabels('targets', opts.targets, n);
  const goal = opts.targets ?? labels;
  checkClassRange(model, x, targeted ? 'targets' : 'labels', goal);
  const batchSize = opts.batchSize ?? DEFAULT_BATCH;
  checkBatchSize(batchSize);
  const spec = gradientSpec(targeted, opts, x.shape[3]);
  const [lo, hi] = model.bounds;

  if (opts.startOffsets && !opts.startOffsets.shape.every((d, i) => d === x.shape[i])) fail(`startOffsets must have the shape of x [${x.shape.join(', ')}]`);
  const noise = plan.randomStart ? (opts.startOffsets ?? randomStartOffsets(x.shape, eps, opts.seed ?? 0)) : null;
  try {
    const [raw, clipped] = mapChunks(x, batchSize, (chunk, start, size) => {
      const chunkSpec = forChunk(spec, opts.seed ?? 0);
      const y = tf.tensor1d(goal.subarray(start, start + size), 'int32');
      // The ball and the box intersect into one per-pixel interval; clipping to it projects onto both.
      const [lower, upper] = tf.tidy(() => [tf.maximum(tf.sub(chunk, eps), lo), tf.minimum(tf.add(chunk, eps), hi)]);
      let adv: tf.Tensor4D = noise
        ? tf.tidy(() => tf.clipByValue(tf.add<tf.Tensor4D>(chunk, noise.slice([start, 0, 0, 0], [size, -1, -1, -1])), lo, hi))
        : tf.clone(chunk);
      let momentum: tf.Tensor4D | null = plan.decay !== null ? tf.zerosLike(chunk) : null;
      let stepped: tf.Tensor4D | null = null;
      try {
        for (let t = 0; t < plan.steps; t++) {
          const current = adv;
          const velocity = momentum;
          // [step before projection, projected iterate, momentum (MI-FGSM only)]
          const out = tf.tidy((): tf.Tensor4D[] => {
            const grad = ascentGradient(model, current, y, chunkSpec);
            let next: tf.Tensor4D | null = null;
            if (velocity !== null && plan.decay !== null) {
              const l1 = tf.maximum(tf.sum(tf.abs(grad), [1, 2, 3], true), L1_FLOOR);
              next = tf.add<tf.Tensor4D>(tf.mul(velocity, plan.decay), tf.div(grad, l1));
            }
            const step = tf.add<tf.Tensor4D>(current, tf.mul(tf.sign(next ?? grad), plan.stepSize));
            const projected = tf.minimum<tf.Tensor4D>(tf.maximum(step, lower), upper);
            return next ? [step, projected, next] : [step, projected];
          });
          tf.dispose([current, velocity ?? [], stepped ?? []]);
          stepped = out[0];
          adv = out[1];
          momentum = out[2] ?? null;
        }
        const result = [stepped as tf.Tensor4D, adv];
        stepped = null;
        return result;
      } catch (e) {
        tf.dispose([adv]);
        throw e;
      } finally {
        tf.dispose([y, lower, upper, momentum ?? [], stepped ?? []]);
      }
    });
    return { raw, clipped };
  } finally {
    if (noise !== opts.startOffsets) noise?.dispose();
    spec.kernel?.dispose();
  }
}

