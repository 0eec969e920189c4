/**
 * L∞ gradient-sign attacks as pure functions over a differentiable `Model` (foolbox style).
 *
 * Semantics, fixed here once:
 * - Loss (`loss`, see attack-losses.ts): softmax cross-entropy from logits via logSoftmax (default), or
 *   the CW margin on logits; summed over the batch so that each image's gradient does not depend on how
 *   many images share its batch.
 * - Untargeted steps go up the loss of the true label: x + α·sign(∇x J(x, y)).
 *   Targeted steps go down the loss of the target:   x − α·sign(∇x J(x, y_target)).
 * - Every iterate is projected onto the L∞ ball of radius ε around x intersected with `model.bounds`.
 * - Default step sizes (steps default 10):
 *     fgsm     one step of ε (steps/stepSize/randomStart ignored);
 *     bim      1.25·ε/steps (Kurakin et al.'s budget: the path may overshoot and come back);
 *     pgd      2.5·ε/steps with a uniform random start in the ball (the start may sit ε on the wrong
 *              side, so the path must be able to cross the whole ball);
 *     mi-fgsm  ε/steps with decay μ = 1 (Dong et al. 2018).
 * - `raw` is the last step's result before its projection (for FGSM exactly x + ε·sign(∇), possibly
 *   outside [0, 1]); `clipped` is the final in-bounds, in-ball adversarial example.
 * - Random starts are drawn once for the whole input (seed default 0), so results do not depend on
 *   `batchSize`, which only bounds memory.
 * Callers own (and must dispose) both returned tensors; nothing else is left allocated.
 */
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from './errors.js';
import type { Model } from './model.js';
import { createRng } from './random.js';
import { attackObjective, CRAFTING_LOSSES, type CraftingLoss } from './attack-losses.js';
import { checkDiversity, checkKernel, drawDiversity, gaussianKernel, smoothGradient, type DiversityOptions } from './attack-transforms.js';

export type AttackName = 'fgsm' | 'bim' | 'pgd' | 'mi-fgsm';
export const ATTACK_NAMES: readonly AttackName[] = ['fgsm', 'bim', 'pgd', 'mi-fgsm'];

export interface AttackOptions {
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
  /** Seed of the random start (default 0). */
  seed?: number;
  /** Images per internal batch, to bound memory (default 500). */
  batchSize?: number;
  /** The objective climbed: 'ce' (default) or the CW 'margin' on logits. */
  loss?: CraftingLoss;
  /** Input diversity (DI): chance per gradient of a random resize-and-pad of the input (default 0, off). */
  diversity?: number;
  /** DI's smallest resize as a share of the image side (default 0.86). */
  diversityScale?: number;
  /** Translation invariance (TI): odd Gaussian kernel size the gradient is smoothed with (default 0, off). */
  tiKernel?: number;
  /** With DI: average each gradient over this many draws (default 1), so even one FGSM step sees many views. */
  diversitySamples?: number;
  /** The loss sees logits / T (default 1). */
  temperature?: number;
}

/** What shapes the gradient itself, for the attacks and for a precomputed FGSM direction. */
export type GradientOptions = Pick<AttackOptions, 'loss' | 'diversity' | 'diversityScale' | 'tiKernel' | 'diversitySamples' | 'temperature' | 'seed'>;

export interface AttackResult {
  /** The last step before projection; may lie outside the bounds. */
  raw: tf.Tensor4D;
  /** Within `model.bounds` and within ε of x in L∞. */
  clipped: tf.Tensor4D;
}

const DEFAULT_STEPS = 10;
const DEFAULT_BATCH = 500;
/** Keeps the per-image L1 normalisation of MI-FGSM finite when a gradient vanishes. */
const L1_FLOOR = 1e-12;

function fail(message: string): never {
  throw new TransferlabError('bad_attack_input', message);
}

function checkLabels(name: string, labels: Int32Array, n: number): void {
  if (labels.length !== n) fail(`${name} has ${labels.length} entries for ${n} images; pass one per image`);
  for (const v of labels) {
    if (!Number.isInteger(v) || v < 0) fail(`${name} contains ${v}; class indices must be integers ≥ 0`);
  }
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${batchSize}`);
}

/** What a gradient is taken of: the target's or the label's objective, which loss, and DI/TI. */
interface GradientSpec {
  targeted: boolean;
  loss: CraftingLoss;
  temperature: number;
  diversity?: DiversityOptions & { rand: () => number; samples: number };
  kernel?: tf.Tensor4D;
}

/** DI and TI draw seeded from their own stream, restarted per chunk so results do not depend on batchSize. */
const DIVERSITY_STREAM = 0xd1;

/** Validates the gradient options; the caller disposes `kernel` (created outside any tidy). */
function gradientSpec(targeted: boolean, o: GradientOptions, channels: number): GradientSpec {
  const loss = o.loss ?? 'ce';
  checkLoss(loss);
  const temperature = o.temperature ?? 1;
  if (!Number.isFinite(temperature) || temperature <= 0) fail(`temperature must be a finite number > 0, got ${temperature}`);
  const spec: GradientSpec = { targeted, loss, temperature };
  const probability = o.diversity ?? 0;
  checkDiversity({ probability, scale: o.diversityScale });
  const samples = o.diversitySamples ?? 1;
  if (!Number.isInteger(samples) || samples < 1 || samples > 64) fail(`diversitySamples must be an integer from 1 to 64, got ${samples}`);
  if (probability > 0) spec.diversity = { probability, scale: o.diversityScale, rand: () => 0, samples };
  const k = o.tiKernel ?? 0;
  checkKernel(k);
  if (k > 1) spec.kernel = gaussianKernel(k, channels);
  return spec;
}

/** The spec for one chunk: a fresh DI stream from the seed. */
function forChunk(spec: GradientSpec, seed: number): GradientSpec {
  return spec.diversity ? { ...spec, diversity: { ...spec.diversity, rand: createRng(seed * 7919 + DIVERSITY_STREAM) } } : spec;
}

function checkLoss(loss: CraftingLoss): void {
  if (!CRAFTING_LOSSES.includes(loss)) fail(`unknown loss '${String(loss)}'; use one of ${CRAFTING_LOSSES.join(', ')}`);
}

/**
 * Gradient of the objective the attacker ascends: J(x, y) untargeted, −J(x, y_target) targeted.
 * Taking the targeted sign here lets every attack simply step along +sign.
 */
function ascentGradient(model: Model, x: tf.Tensor4D, y: tf.Tensor1D, spec: GradientSpec): tf.Tensor4D {
  const d = spec.diversity;
  const one = (view: (v: tf.Tensor4D) => tf.Tensor4D) =>
    tf.grad((input: tf.Tensor) => attackObjective(model, view(input as tf.Tensor4D), y, spec.targeted, spec.loss, spec.temperature))(x) as tf.Tensor4D;
  // Several DI draws are summed, not averaged: the sign, MI's L1 normalisation and TI do not see the scale.
  const grad = d
    ? tf.addN(Array.from({ length: d.samples }, () => one(drawDiversity(d, x.shape[1], x.shape[2], d.rand))))
    : one((v) => v);
  return spec.kernel ? smoothGradient(grad, spec.kernel) : grad;
}

/** The raw ascent gradient (not its sign) of one batch: what every attack steps along. */
export function attackGradient(model: Model, x: tf.Tensor4D, labels: Int32Array, targeted = false, opts: GradientOptions = {}): tf.Tensor4D {
  checkLabels(targeted ? 'targets' : 'labels', labels, x.shape[0]);
  const spec = gradientSpec(targeted, opts, x.shape[3]);
  try {
    checkClassRange(model, x, targeted ? 'targets' : 'labels', labels);
    return tf.tidy(() => ascentGradient(model, x, tf.tensor1d(labels, 'int32'), forChunk(spec, opts.seed ?? 0)));
  } finally {
    spec.kernel?.dispose();
  }
}

/**
 * An out-of-range class would one-hot to a zero row and silently yield a zero gradient, so labels
 * are checked against the model's class count (one single-image forward pass) before any gradient.
 */
function checkClassRange(model: Model, x: tf.Tensor4D, name: string, labels: Int32Array): void {
  if (labels.length === 0) return;
  const logits = tf.tidy(() => model.logits(x.slice([0, 0, 0, 0], [1, -1, -1, -1])));
  const classes = logits.shape[1];
  logits.dispose();
  for (const v of labels) {
    if (v >= classes) fail(`${name} contains class ${v}, out of range for a model with ${classes} classes`);
  }
}

/** Run `fn` over row-slices of x and concatenate each of its outputs; bounds peak memory. */
function mapChunks(
  x: tf.Tensor4D,
  batchSize: number,
  fn: (chunk: tf.Tensor4D, start: number, size: number) => tf.Tensor4D[],
): tf.Tensor4D[] {
  const n = x.shape[0];
  if (n <= batchSize) return fn(x, 0, n);
  const parts: tf.Tensor4D[][] = [];
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const chunk = x.slice([start, 0, 0, 0], [size, -1, -1, -1]);
      try {
        parts.push(fn(chunk, start, size));
      } finally {
        chunk.dispose();
      }
    }
    return parts[0].map((_, k) => tf.concat(parts.map((p) => p[k]), 0));
  } finally {
    for (const p of parts) tf.dispose(p);
  }
}

/**
 * The FGSM direction: +sign(∇x J(x, label)) untargeted, −sign(∇x J(x, target)) targeted
 * (pass the targets as `labels` when `targeted`).
 */
export function inputGradientSign(
  model: Model,
  x: tf.Tensor4D,
  labels: Int32Array,
  targeted = false,
  batchSize = DEFAULT_BATCH,
  opts: GradientOptions = {},
): tf.Tensor4D {
  checkLabels(targeted ? 'targets' : 'labels', labels, x.shape[0]);
  checkBatchSize(batchSize);
  const spec = gradientSpec(targeted, opts, x.shape[3]);
  try {
    checkClassRange(model, x, targeted ? 'targets' : 'labels', labels);
    return mapChunks(x, batchSize, (chunk, start, size) => [
      tf.tidy(() => {
        const y = tf.tensor1d(labels.subarray(start, start + size), 'int32');
        return tf.sign(ascentGradient(model, chunk, y, forChunk(spec, opts.seed ?? 0)));
      }),
    ])[0];
  } finally {
    spec.kernel?.dispose();
  }
}

interface Plan {
  steps: number;
  stepSize: number;
  /** Momentum decay; null means plain sign-of-gradient steps. */
  decay: number | null;
  randomStart: boolean;
}

/** The shared engine: iterated sign steps with projection, optionally with momentum and a random start. */
function iterate(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions, plan: Plan): AttackResult {
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

  const noise = plan.randomStart ? tf.randomUniform(x.shape, -eps, eps, 'float32', opts.seed ?? 0) : null;
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
    noise?.dispose();
    spec.kernel?.dispose();
  }
}

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

/** Basic Iterative Method (Kurakin et al.): FGSM repeated with projection. */
export function bim(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  const steps = opts.steps ?? DEFAULT_STEPS;
  const stepSize = opts.stepSize ?? (1.25 * opts.epsilon) / steps;
  return iterate(model, x, labels, opts, { steps, stepSize, decay: null, randomStart: opts.randomStart ?? false });
}

/** Projected Gradient Descent (Madry et al.): BIM from a uniform random start in the ε-ball. */
export function pgd(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  const steps = opts.steps ?? DEFAULT_STEPS;
  const stepSize = opts.stepSize ?? (2.5 * opts.epsilon) / steps;
  return iterate(model, x, labels, opts, { steps, stepSize, decay: null, randomStart: opts.randomStart ?? true });
}

/** Momentum Iterative FGSM (Dong et al.): g ← μ·g + ∇/‖∇‖₁ per image, step along sign(g). */
export function miFgsm(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: AttackOptions): AttackResult {
  const steps = opts.steps ?? DEFAULT_STEPS;
  const stepSize = opts.stepSize ?? opts.epsilon / steps;
  const decay = opts.decay ?? 1;
  return iterate(model, x, labels, opts, { steps, stepSize, decay, randomStart: opts.randomStart ?? false });
}

export function runAttack(
  name: AttackName,
  model: Model,
  x: tf.Tensor4D,
  labels: Int32Array,
  opts: AttackOptions,
): AttackResult {
  switch (name) {
    case 'fgsm':
      return fgsm(model, x, labels, opts);
    case 'bim':
      return bim(model, x, labels, opts);
    case 'pgd':
      return pgd(model, x, labels, opts);
    case 'mi-fgsm':
      return miFgsm(model, x, labels, opts);
    default: {
      const unknown: never = name;
      throw new TransferlabError('unknown_attack', `unknown attack '${String(unknown)}'; use one of ${ATTACK_NAMES.join(', ')}`);
    }
  }
}

/**
 * Target classes for a targeted attack.
 * 'random': a uniformly drawn class other than the image's label, reproducible from `seed`;
 * 'next':   (label + 1) mod classes;
 * a number: that class for every image — images already of that class keep it as their target, so
 *           pass `truth` to `targetedSuccessRate` to leave them out of the measure.
 */
export function chooseTargets(
  labels: Int32Array,
  mode: 'random' | 'next' | number,
  seed: number,
  classes = 10,
): Int32Array {
  if (!Number.isInteger(classes) || classes < 2) fail(`classes must be an integer ≥ 2, got ${classes}`);
  for (const v of labels) {
    if (!Number.isInteger(v) || v < 0 || v >= classes) fail(`label ${v} is out of range for ${classes} classes`);
  }
  if (typeof mode === 'number') {
    if (!Number.isInteger(mode) || mode < 0 || mode >= classes) {
      fail(`target class ${mode} is out of range for ${classes} classes`);
    }
    return new Int32Array(labels.length).fill(mode);
  }
  if (mode === 'next') return labels.map((v) => (v + 1) % classes);
  if (mode !== 'random') fail(`unknown target mode '${String(mode)}'; use 'random', 'next' or a class index`);
  const rand = createRng(seed);
  // An offset in 1..classes−1 is uniform over the other classes and can never land on the label.
  return labels.map((v) => (v + 1 + Math.floor(rand() * (classes - 1))) % classes);
}
