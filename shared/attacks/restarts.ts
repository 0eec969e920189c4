/**
 * PGD with random restarts, worst case per image (Madry et al. 2018's evaluation): the attack runs from
 * `restarts` independent uniform starts in the ε-ball and an image counts as robust only if every run
 * fails on it. A run that fools an image ends the search for that image, so later restarts only attack
 * the images still standing: the accuracy is the same as running all restarts on all images, at a
 * fraction of the cost on a weak model.
 *
 * Among failed runs the one nearest to flipping the label is kept (largest logit margin of the best
 * other class — or of the target — over the label), so the returned images are the worst found.
 * `finish` maps each run's images before they are judged (e.g. 8-bit quantisation, as a client must
 * send them), so the verdict is on exactly the images returned.
 */
import * as tf from '@tensorflow/tfjs';
import { pgd, type AttackOptions, type AttackResult } from './index.js';
import { TransferlabError } from '../errors.js';
import type { Model } from '../model/model.js';

export interface RestartOptions extends AttackOptions {
  /** Independent random starts (default 1: plain PGD). */
  restarts?: number;
  /** Applied to each run's in-bounds images before judging them (default: none). */
  finish?: (images: Float32Array) => Float32Array;
  /** After each run: how many images no run has fooled yet (a long evaluation reports its progress). */
  onRun?: (run: number, standing: number) => void;
}

export interface RestartResult extends AttackResult {
  /** Per image: the run (0-based) that first fooled it, or −1 when none did. */
  fooledBy: Int32Array;
  /** Runs actually made (fewer than `restarts` when every image fell early). */
  runs: number;
}

/** Seeds of successive runs: far apart, so no two runs share a start. */
const RUN_SEED_STRIDE = 7919;

export function pgdWithRestarts(model: Model, x: tf.Tensor4D, labels: Int32Array, opts: RestartOptions): RestartResult {
  const restarts = opts.restarts ?? 1;
  if (!Number.isInteger(restarts) || restarts < 1) throw new TransferlabError('bad_attack_input', `restarts must be a positive integer, got ${restarts}`);
  if (labels.length !== x.shape[0]) throw new TransferlabError('bad_attack_input', `labels has ${labels.length} entries for ${x.shape[0]} images; pass one per image`);
  const n = x.shape[0];
  const size = x.size / Math.max(n, 1);
  const targets = opts.targets;
  const bestRaw = new Float32Array(n * size);
  const bestAdv = new Float32Array(n * size);
  const bestScore = new Float32Array(n).fill(-Infinity);
  const fooledBy = new Int32Array(n).fill(-1);
  let runs = 0;
  for (let r = 0; r < restarts; r++) {
    const open: number[] = [];
    for (let i = 0; i < n; i++) if (fooledBy[i] < 0) open.push(i);
    if (open.length === 0) break;
    runs++;
    const all = open.length === n;
    const idx = all ? null : tf.tensor1d(open, 'int32');
    const sub = idx ? (tf.gather(x, idx) as tf.Tensor4D) : x;
    const pick = (a: Int32Array) => (all ? a : Int32Array.from(open, (i) => a[i]));
    const subLabels = pick(labels);
    const subTargets = targets ? pick(targets) : undefined;
    let raw: Float32Array;
    let adv: Float32Array;
    try {
      const result = pgd(model, sub, subLabels, { ...opts, targets: subTargets, seed: (opts.seed ?? 0) + r * RUN_SEED_STRIDE });
      raw = result.raw.dataSync() as Float32Array;
      const clipped = result.clipped.dataSync() as Float32Array;
      adv = opts.finish ? opts.finish(clipped) : clipped;
      tf.dispose([result.raw, result.clipped]);
    } finally {
      if (idx) tf.dispose([idx, sub]);
    }
    const scores = flipScores(model, adv, open.length, sub.shape, subTargets ?? subLabels, subTargets !== undefined);
    open.forEach((i, k) => {
      if (scores[k] <= bestScore[i] && !(scores[k] > 0)) return;
      bestScore[i] = scores[k];
      bestRaw.set(raw.subarray(k * size, (k + 1) * size), i * size);
      bestAdv.set(adv.subarray(k * size, (k + 1) * size), i * size);
      if (scores[k] > 0) fooledBy[i] = r;
    });
    opts.onRun?.(r + 1, fooledBy.reduce((s, f) => s + (f < 0 ? 1 : 0), 0));
  }
  const shape = x.shape;
  return { raw: tf.tensor4d(bestRaw, shape), clipped: tf.tensor4d(bestAdv, shape), fooledBy, runs };
}

/**
 * How far past flipping each image is: untargeted, the best other logit minus the label's (> 0: the
 * label changed); targeted, the target's logit minus the best other (> 0: the target won).
 */
function flipScores(model: Model, images: Float32Array, count: number, shape: number[], classes: Int32Array, targeted: boolean): Float32Array {
  return tf.tidy(() => {
    const logits = model.logits(tf.tensor4d(images, [count, shape[1], shape[2], shape[3]]));
    const onehot = tf.oneHot(tf.tensor1d(classes, 'int32'), logits.shape[1]).cast('float32');
    const own = tf.sum(tf.mul(onehot, logits), 1);
    const other = tf.max(tf.sub(logits, tf.mul(onehot, 1e9)), 1);
    return (targeted ? tf.sub(own, other) : tf.sub(other, own)).dataSync() as Float32Array;
  });
}
