/**
 * Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an ensemble of
 * diverse parameter-free attacks"), L∞: PGD without a step size to tune. Read against the authors'
 * reference (fra31/auto-attack, autoattack/autopgd_base.py); written from the paper's algorithm.
 *
 * - Start: x plus a uniform random offset scaled so that its largest pixel change is exactly ε,
 *   clipped to the bounds. Step size η = 2ε per image.
 * - Step with momentum α = 0.75 (the first step has none):
 *     z = P(x_k + η·sign(∇f(x_k)));  x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))
 *   with P the projection onto the ε-ball ∩ the bounds.
 * - Checkpoints w_j = ⌈p_j·N⌉ with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06).
 *   At each one, an image's step size is halved when
 *     1. the loss rose in at most ρ = 0.75 of the steps since the last checkpoint (it oscillates), or
 *     2. its step size was not halved at the last checkpoint and its best loss has not improved since;
 *   and an image whose step size is halved restarts from its best point (highest loss so far), with
 *   the gradient it had there.
 * - An image counts as fooled as soon as any iterate changes its label (as `judge` sees it: e.g. after
 *   8-bit quantisation); the returned image is that iterate, else the best-loss point.
 *
 * Objectives (losses.ts): 'ce' (APGD-CE), 'dlr' (APGD-DLR), and with `targets` the targeted DLR loss
 * (APGD-T, one target per image; `apgdTargeted` runs it over the top other classes).
 */
import * as tf from '@tensorflow/tfjs';
import type { Model } from '../model/model.js';
import { createRng } from '../random.js';
import { checkBatchSize, checkClassRange, checkLabels, DEFAULT_BATCH, fail } from './gradient.js';
import { crossEntropyPerImage, dlrLoss } from './losses.js';

export interface ApgdOptions {
  /** L∞ radius, in the model's input units. */
  epsilon: number;
  /** Iterations N (default 100, the authors'). */
  steps?: number;
  /** 'ce' (default) or 'dlr'; ignored with `targets` (always the targeted DLR loss). */
  loss?: 'ce' | 'dlr';
  /** A target class per image: APGD-T's targeted DLR loss. Success is still any change of label. */
  targets?: Int32Array;
  /** Seed of the random start (default 0). */
  seed?: number;
  /** Momentum α (default 0.75). */
  momentum?: number;
  /** Share of rising steps at or below which a checkpoint halves the step size (default 0.75). */
  rho?: number;
  /** What the label is judged on, per iterate (default: the iterate itself; e.g. 8-bit quantisation). */
  judge?: (x: tf.Tensor4D) => tf.Tensor4D;
  /** Images per internal batch, to bound memory (default 500). */
  batchSize?: number;
  /** At each checkpoint, per image of the chunk: the step size after it and whether it was halved (tests). */
  onCheckpoint?: (at: { iteration: number; start: number; stepSizes: Float32Array; halved: Uint8Array }) => void;
}

export interface ApgdResult {
  /** Per image: the iterate that fooled it, else its best-loss point; in the ball and the bounds. */
  adversarial: tf.Tensor4D;
  /** 1 where some iterate changed the label (as `judge` sees it). */
  fooled: Uint8Array;
  /** With `targets`: 1 where some iterate was labelled the target (the image returned is then one that was). */
  reached?: Uint8Array;
}

export const APGD_STEPS = 100;

/** The iterations after which APGD checks its step size (1-based counts of steps taken), for N steps. */
export function apgdCheckpoints(steps: number): number[] {
  // The reference's integer form of the same schedule: the first interval ⌊0.22N⌋, each next one 0.03N
  // shorter, never shorter than 0.06N.
  const first = Math.max(Math.floor(0.22 * steps), 1);
  const decrease = Math.max(Math.floor(0.03 * steps), 1);
  const least = Math.max(Math.floor(0.06 * steps), 1);
  const out: number[] = [];
  for (let at = first, k = first; at <= steps; k = Math.max(k - decrease, least), at += k) out.push(at);
  return out;
}

/** The objective per image and the prediction, from logits. */
function lossOf(logits: tf.Tensor2D, y: tf.Tensor1D, loss: 'ce' | 'dlr', t: tf.Tensor1D | null): tf.Tensor1D {
  if (t) return dlrLoss(logits, y, t);
  return loss === 'dlr' ? dlrLoss(logits, y) : crossEntropyPerImage(logits, y);
}

export function apgd(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: ApgdOptions): ApgdResult {
  const n = x.shape[0];
  const eps = opts.epsilon;
  if (!Number.isFinite(eps) || eps < 0) fail(`epsilon must be a finite number ≥ 0, got ${eps}`);
  const steps = opts.steps ?? APGD_STEPS;
  if (!Number.isInteger(steps) || steps < 1) fail(`steps must be a positive integer, got ${steps}`);
  const momentum = opts.momentum ?? 0.75;
  const rho = opts.rho ?? 0.75;
  if (!(momentum >= 0 && momentum <= 1)) fail(`momentum must be in [0, 1], got ${momentum}`);
  if (!(rho >= 0 && rho <= 1)) fail(`rho must be in [0, 1], got ${rho}`);
  const loss = opts.loss ?? 'ce';
  if (loss !== 'ce' && loss !== 'dlr') fail(`unknown APGD loss '${String(loss)}'; use ce or dlr`);
  checkLabels('labels', labels, n);
  if (opts.targets) checkLabels('targets', opts.targets, n);
  checkClassRange(model, x, 'labels', labels);
  if (opts.targets) checkClassRange(model, x, 'targets', opts.targets);
  const batchSize = opts.batchSize ?? DEFAULT_BATCH;
  checkBatchSize(batchSize);

  const size = x.size / Math.max(n, 1);
  const adversarial = new Float32Array(x.size);
  const fooled = new Uint8Array(n);
  const reached = opts.targets ? new Uint8Array(n) : undefined;
  const rand = createRng(opts.seed ?? 0);
  for (let start = 0; start < n; start += batchSize) {
    const m = Math.min(batchSize, n - start);
    const chunk = tf.slice(x, [start, 0, 0, 0], [m, -1, -1, -1]);
    // One draw per pixel of the whole input in order, so the start does not depend on batchSize.
    const offsets = new Float32Array(m * size);
    for (let p = 0; p < offsets.length; p++) offsets[p] = 2 * rand() - 1;
    try {
      const r = runChunk(model, chunk, labels.subarray(start, start + m), opts.targets?.subarray(start, start + m) ?? null, offsets, {
        eps, steps, momentum, rho, loss, judge: opts.judge, start, onCheckpoint: opts.onCheckpoint,
      });
      adversarial.set(r.images, start * size);
      fooled.set(r.fooled, start);
      reached?.set(r.reached, start);
    } finally {
      chunk.dispose();
    }
  }
  return { adversarial: tf.tensor4d(adversarial, x.shape), fooled, ...(reached ? { reached } : {}) };
}

interface ChunkSettings {
  eps: number;
  steps: number;
  momentum: number;
  rho: number;
  loss: 'ce' | 'dlr';
  judge?: (x: tf.Tensor4D) => tf.Tensor4D;
  start: number;
  onCheckpoint?: ApgdOptions['onCheckpoint'];
}

/** Per image: `a` where mask is 1, else `b` (mask has one entry per image). */
function choose(mask: Uint8Array, a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const cond = tf.broadcastTo(tf.reshape(tf.tensor1d(mask, 'bool'), [mask.length, 1, 1, 1]), a.shape);
    return tf.where(cond, a, b);
  });
}

function runChunk(model: Model, x: tf.Tensor4D, labels: Int32Array, targets: Int32Array | null, offsets: Float32Array, s: ChunkSettings): { images: Float32Array; fooled: Uint8Array; reached: Uint8Array } {
  const m = x.shape[0];
  const [lo, hi] = model.bounds;
  const keep: tf.Tensor[] = [];
  const held = <T extends tf.Tensor>(t: T): T => (keep.push(t), t);
  const y = held(tf.tensor1d(labels, 'int32'));
  const t = targets ? held(tf.tensor1d(targets, 'int32')) : null;
  const [lower, upper] = tf.tidy(() => [tf.maximum(tf.sub(x, s.eps), lo), tf.minimum(tf.add(x, s.eps), hi)]).map(held) as tf.Tensor4D[];
  const project = (v: tf.Tensor4D) => tf.minimum(tf.maximum(v, lower), upper) as tf.Tensor4D;
  const classes = tf.tidy(() => model.logits(tf.slice(x, [0, 0, 0, 0], [1, -1, -1, -1])).shape[1]);
  // The logits and the per-image loss in one output, so one backward pass gives the gradient of Σ loss.
  const dy = held(tf.tidy(() => tf.tile(tf.concat([tf.zeros([1, classes]), tf.ones([1, 1])], 1), [m, 1])));
  const evaluate = (v: tf.Tensor4D) => {
    const { value, grad } = tf.valueAndGrad((input: tf.Tensor4D) => {
      const logits = model.logits(input);
      return tf.concat([logits, tf.reshape(lossOf(logits, y, s.loss, t), [m, 1])], 1);
    })(v, dy);
    const losses = tf.tidy(() => tf.slice(value, [0, classes], [-1, 1]).dataSync() as Float32Array);
    const judged = s.judge ? tf.tidy(() => model.logits(s.judge!(v)).argMax(1)) : tf.tidy(() => tf.slice(value, [0, 0], [-1, classes]).argMax(1));
    const pred = judged.dataSync() as Int32Array;
    tf.dispose([value, judged]);
    return { losses: Float32Array.from(losses), pred: Int32Array.from(pred), grad: grad as tf.Tensor4D };
  };

  // The start: a uniform offset rescaled per image so that its largest change is exactly ε.
  let xAdv = tf.tidy(() => {
    const u = tf.tensor4d(offsets, x.shape);
    const scale = tf.add(tf.max(tf.abs(u), [1, 2, 3], true), 1e-12);
    return tf.clipByValue(tf.add(x, tf.mul(tf.div(u, scale), s.eps)), lo, hi) as tf.Tensor4D;
  });
  const first = evaluate(xAdv);
  let grad = first.grad;
  let xPrev = tf.clone(xAdv);
  let xBest = tf.clone(xAdv);
  let gradBest = tf.clone(grad);
  let xFooled = tf.clone(xAdv);
  const fooled = Uint8Array.from(first.pred, (p, i) => (p !== labels[i] ? 1 : 0));
  const reached = Uint8Array.from(first.pred, (p, i) => (targets && p === targets[i] ? 1 : 0));
  const lossBest = Float32Array.from(first.losses);
  let lossPrev = first.losses;
  const stepSize = new Float32Array(m).fill(2 * s.eps);
  const rises = new Int32Array(m);
  let lossBestAtCheck = Float32Array.from(lossBest);
  // Before the first checkpoint no halving "happened last time" can excuse it: condition 2 waits.
  let halvedLast = new Uint8Array(m).fill(1);
  const checkpoints = new Set(apgdCheckpoints(s.steps));
  let sinceCheck = 0;
  try {
    for (let i = 0; i < s.steps; i++) {
      const a = i > 0 ? s.momentum : 1;
      const eta = tf.tensor4d(stepSize, [m, 1, 1, 1]);
      const next = tf.tidy(() => {
        const z = project(tf.add(xAdv, tf.mul(tf.sign(grad), eta)));
        return project(tf.add(tf.add(xAdv, tf.mul(tf.sub(z, xAdv), a)), tf.mul(tf.sub(xAdv, xPrev), 1 - a)));
      });
      eta.dispose();
      xPrev.dispose();
      xPrev = xAdv;
      xAdv = next;
      grad.dispose();
      const e = evaluate(xAdv);
      grad = e.grad;
      const newlyFooled = new Uint8Array(m);
      const better = new Uint8Array(m);
      for (let k = 0; k < m; k++) {
        // The image kept: the latest that changed the label; with a target, the latest that reached it once one has.
        const hit = targets !== null && e.pred[k] === targets[k];
        if (e.pred[k] !== labels[k] && (hit || !reached[k])) newlyFooled[k] = 1;
        if (e.pred[k] !== labels[k]) fooled[k] = 1;
        if (hit) reached[k] = 1;
        if (e.losses[k] > lossPrev[k]) rises[k]++;
        if (e.losses[k] > lossBest[k]) {
          better[k] = 1;
          lossBest[k] = e.losses[k];
        }
      }
      lossPrev = e.losses;
      if (newlyFooled.some((v) => v)) xFooled = swap(xFooled, choose(newlyFooled, xAdv, xFooled));
      if (better.some((v) => v)) {
        xBest = swap(xBest, choose(better, xAdv, xBest));
        gradBest = swap(gradBest, choose(better, grad, gradBest));
      }
      sinceCheck++;
      if (checkpoints.has(i + 1)) {
        const halve = new Uint8Array(m);
        for (let k = 0; k < m; k++) {
          const oscillates = rises[k] <= s.rho * sinceCheck;
          const stalled = !halvedLast[k] && lossBestAtCheck[k] >= lossBest[k];
          halve[k] = oscillates || stalled ? 1 : 0;
          if (halve[k]) stepSize[k] /= 2;
        }
        if (halve.some((v) => v)) {
          xAdv = swap(xAdv, choose(halve, xBest, xAdv));
          grad = swap(grad, choose(halve, gradBest, grad));
        }
        s.onCheckpoint?.({ iteration: i + 1, start: s.start, stepSizes: Float32Array.from(stepSize), halved: Uint8Array.from(halve) });
        halvedLast = halve;
        lossBestAtCheck = Float32Array.from(lossBest);
        rises.fill(0);
        sinceCheck = 0;
      }
    }
    const out = choose(fooled, xFooled, xBest);
    const images = out.dataSync() as Float32Array;
    out.dispose();
    return { images: Float32Array.from(images), fooled, reached };
  } finally {
    tf.dispose([xAdv, xPrev, xBest, gradBest, xFooled, grad, ...keep]);
  }
}

/** Replace a held tensor by its successor, releasing the old one. */
function swap(old: tf.Tensor4D, next: tf.Tensor4D): tf.Tensor4D {
  if (old !== next) old.dispose();
  return next;
}

export interface ApgdTargetedOptions extends Omit<ApgdOptions, 'targets' | 'loss'> {
  /** How many of the other classes to aim at, by decreasing clean logit (default 9: all of MNIST's). */
  targetClasses?: number;
  /** After each target: its rank (1 = the top other class) and how many images are still standing. */
  onTarget?: (rank: number, standing: number) => void;
}

/**
 * APGD-T: the targeted DLR loss aimed in turn at each image's top other classes (by clean logit, the
 * most likely first), each run only on the images no earlier target fooled, as the authors run it.
 */
export function apgdTargeted(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: ApgdTargetedOptions): ApgdResult {
  const n = x.shape[0];
  checkLabels('labels', labels, n);
  const sorted = tf.tidy(() => {
    const logits = model.logits(x);
    return tf.topk(logits, logits.shape[1]).indices;
  });
  const order = { classes: sorted.shape[1], ranks: sorted.dataSync() as Int32Array };
  sorted.dispose();
  const wanted = opts.targetClasses ?? 9;
  if (!Number.isInteger(wanted) || wanted < 1 || wanted > order.classes - 1) fail(`targetClasses must be an integer from 1 to ${order.classes - 1}, got ${wanted}`);
  const size = x.size / Math.max(n, 1);
  const best = x.dataSync().slice() as Float32Array;
  const fooled = new Uint8Array(n);
  for (let rank = 1; rank <= wanted; rank++) {
    const open: number[] = [];
    for (let i = 0; i < n; i++) if (!fooled[i]) open.push(i);
    if (open.length === 0) break;
    // The rank-th class of the clean logits other than the label (rank 1 = the strongest rival).
    const targets = Int32Array.from(open, (i) => order.ranks.subarray(i * order.classes, (i + 1) * order.classes).filter((c) => c !== labels[i])[rank - 1]);
    const idx = tf.tensor1d(open, 'int32');
    const sub = tf.gather(x, idx) as tf.Tensor4D;
    idx.dispose();
    try {
      const r = apgd(model, sub, Int32Array.from(open, (i) => labels[i]), { ...opts, targets, seed: (opts.seed ?? 0) + rank });
      const images = r.adversarial.dataSync() as Float32Array;
      r.adversarial.dispose();
      open.forEach((i, k) => {
        if (!r.fooled[k] && rank > 1) return;
        best.set(images.subarray(k * size, (k + 1) * size), i * size);
        fooled[i] = r.fooled[k];
      });
    } finally {
      sub.dispose();
    }
    opts.onTarget?.(rank, fooled.reduce((c, f) => c + (f ? 0 : 1), 0));
  }
  return { adversarial: tf.tensor4d(best, x.shape), fooled };
}
