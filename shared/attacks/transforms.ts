import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';

/**
 * Two ways to keep an attack from over-fitting the one model it differentiates:
 *
 * - Input diversity (Xie et al. 2019, DI): with probability p per gradient, the input is resized to a
 *   random smaller size s ∈ [⌈scale·H⌉, H] (bilinear, so the gradient flows back through it) and
 *   zero-padded at a random offset back to H×W before the model sees it. One draw per gradient for the
 *   whole batch, from the attack's seeded stream.
 * - Translation invariance (Dong et al. 2019, TI): the input gradient is convolved with a k×k Gaussian
 *   (each channel on its own, zero padding), which is the gradient of the loss averaged over small
 *   translations of the image. σ = (k − 1)/6, so the kernel reaches 3σ at its edge.
 *
 * Neither touches the projection: the step is still clipped to the ε-ball and the bounds.
 */
export interface DiversityOptions {
  /** Chance that a gradient is taken on a resized-and-padded input (0 = off). */
  probability: number;
  /** Smallest resize, as a share of the image side (default 0.86: 24 of 28 pixels). */
  scale?: number;
}

export const DEFAULT_DIVERSITY_SCALE = 0.86;

function fail(message: string): never {
  throw new TransferlabError('bad_attack_input', message);
}

export function checkDiversity(d: DiversityOptions): void {
  if (!Number.isFinite(d.probability) || d.probability < 0 || d.probability > 1) {
    fail(`diversity probability must be in [0, 1], got ${d.probability}`);
  }
  const scale = d.scale ?? DEFAULT_DIVERSITY_SCALE;
  if (!Number.isFinite(scale) || scale <= 0 || scale > 1) fail(`diversity scale must be in (0, 1], got ${scale}`);
}

export function checkKernel(size: number): void {
  if (!Number.isInteger(size) || size < 0 || (size > 1 && size % 2 === 0) || size > 15) {
    fail(`translation-invariance kernel must be 0 (off) or an odd size from 1 to 15, got ${size}`);
  }
}

/** One DI draw: a function from a batch to the batch the model sees (identity when not drawn). */
export function drawDiversity(d: DiversityOptions, height: number, width: number, rand: () => number): (x: tf.Tensor4D) => tf.Tensor4D {
  // Every draw consumes the same number of values, so later draws do not depend on earlier outcomes.
  const apply = rand() < d.probability;
  const u = [rand(), rand(), rand()];
  if (!apply) return (x) => x;
  const scale = d.scale ?? DEFAULT_DIVERSITY_SCALE;
  const minH = Math.max(1, Math.ceil(scale * height));
  const minW = Math.max(1, Math.ceil(scale * width));
  const h = minH + Math.floor(u[0] * (height - minH + 1));
  const w = Math.min(width, Math.max(minW, Math.round((h / height) * width)));
  const top = Math.floor(u[1] * (height - h + 1));
  const left = Math.floor(u[2] * (width - w + 1));
  if (h === height && w === width) return (x) => x;
  return (x) =>
    tf.pad(tf.image.resizeBilinear(x, [h, w]), [
      [0, 0],
      [top, height - h - top],
      [left, width - w - left],
      [0, 0],
    ]);
}

/** The TI kernel as a depthwise filter [k, k, channels, 1], normalised to sum 1 per channel. */
export function gaussianKernel(size: number, channels: number): tf.Tensor4D {
  const sigma = Math.max((size - 1) / 6, 1e-6);
  const half = (size - 1) / 2;
  const one = Array.from({ length: size }, (_, i) => Math.exp(-((i - half) ** 2) / (2 * sigma * sigma)));
  const values: number[] = [];
  let total = 0;
  for (let r = 0; r < size; r++) for (let c = 0; c < size; c++) total += one[r] * one[c];
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) for (let ch = 0; ch < channels; ch++) values.push((one[r] * one[c]) / total);
  }
  return tf.tensor4d(values, [size, size, channels, 1]);
}

/** The gradient smoothed by the TI kernel (same shape; zero padding at the borders). */
export function smoothGradient(grad: tf.Tensor4D, kernel: tf.Tensor4D): tf.Tensor4D {
  return tf.depthwiseConv2d(grad, kernel, 1, 'same');
}
