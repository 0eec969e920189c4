/**
 * The gradient every attack steps along, and the checks every attack makes: the objective (loss,
 * targeted sign, temperature), input diversity (DI) and translation invariance (TI), one batch at a time.
 * index.ts states the semantics; this file is their gradient half.
 */
import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';
import type { Model } from '../model/model.js';
import { createRng } from '../random.js';
import { attackObjective, CRAFTING_LOSSES, type CraftingLoss } from './losses.js';
import { checkDiversity, checkKernel, drawDiversity, gaussianKernel, smoothGradient, type DiversityOptions } from './transforms.js';

/** What shapes the gradient itself, for the attacks and for a precomputed FGSM direction. */
export interface GradientOptions {
  /** Seed of the random start and of DI's draws (default 0). */
  seed?: number;
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

export const DEFAULT_BATCH = 500;

export function fail(message: string): never {
  throw new TransferlabError('bad_attack_input', message);
}

export function checkLabels(name: string, labels: Int32Array, n: number): void {
  if (labels.length !== n) fail(`${name} has ${labels.length} entries for ${n} images; pass one per image`);
  for (const v of labels) {
    if (!Number.isInteger(v) || v < 0) fail(`${name} contains ${v}; class indices must be integers ≥ 0`);
  }
}

export function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${batchSize}`);
}

/** What a gradient is taken of: the target's or the label's objective, which loss, and DI/TI. */
export interface GradientSpec {
  targeted: boolean;
  loss: CraftingLoss;
  temperature: number;
  diversity?: DiversityOptions & { rand: () => number; samples: number };
  kernel?: tf.Tensor4D;
}

/** DI and TI draw seeded from their own stream, restarted per chunk so results do not depend on batchSize. */
const DIVERSITY_STREAM = 0xd1;

/** Validates the gradient options; the caller disposes `kernel` (created outside any tidy). */
export function gradientSpec(targeted: boolean, o: GradientOptions, channels: number): GradientSpec {
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
export function forChunk(spec: GradientSpec, seed: number): GradientSpec {
  return spec.diversity ? { ...spec, diversity: { ...spec.diversity, rand: createRng(seed * 7919 + DIVERSITY_STREAM) } } : spec;
}

function checkLoss(loss: CraftingLoss): void {
  if (!CRAFTING_LOSSES.includes(loss)) fail(`unknown loss '${String(loss)}'; use one of ${CRAFTING_LOSSES.join(', ')}`);
}

/**
 * Gradient of the objective the attacker ascends: J(x, y) untargeted, −J(x, y_target) targeted.
 * Taking the targeted sign here lets every attack simply step along +sign.
 */
export function ascentGradient(model: Model, x: tf.Tensor4D, y: tf.Tensor1D, spec: GradientSpec): tf.Tensor4D {
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
export function checkClassRange(model: Model, x: tf.Tensor4D, name: string, labels: Int32Array): void {
  if (labels.length === 0) return;
  const logits = tf.tidy(() => model.logits(x.slice([0, 0, 0, 0], [1, -1, -1, -1])));
  const classes = logits.shape[1];
  logits.dispose();
  for (const v of labels) {
    if (v >= classes) fail(`${name} contains class ${v}, out of range for a model with ${classes} classes`);
  }
}

/** Run `fn` over row-slices of x and concatenate each of its outputs; bounds peak memory. */
export function mapChunks(
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

