/**
 * The attacks added to the defence evaluation to bring it to AutoAttack's standard (Croce & Hein 2020),
 * and the worst case per image over every attack run:
 * - APGD-CE: step-size-free PGD with momentum on cross-entropy, 100 iterations, on every image;
 * - APGD-T: the targeted DLR loss aimed in turn at the top 9 other classes (shared/attacks/apgd.ts);
 * - Square Attack with 5,000 queries on the model's own scores (its logits), score-based, no gradient;
 * - RayS (label-only, adversary/query/rays.ts) with the model's own labels, no gradient, no scores.
 * Every probe and every crafted image is rounded to 8 bits before it is judged, as a client sends it.
 *
 * With `cascade` (the default) APGD-T, Square and RayS attack only the images every attack before them
 * left standing, as AutoAttack runs its ensemble: the worst case per image is the same as running each on
 * every image, at a fraction of the time, but those three then have no accuracy of their own (only the
 * images they fooled among those they attacked).
 */
import * as tf from '@tensorflow/tfjs';
import { runLockStep } from '../../adversary/query/search.js';
import { raysSearch } from '../../adversary/query/rays.js';
import { apgd, apgdTargeted } from '../../shared/attacks/apgd.js';
import { squareAttack } from '../../shared/attacks/square.js';
import { imagesTensor, quantise, type ImageShape } from '../../shared/datasets/index.js';
import { labelImages, type Model } from '../../shared/model/model.js';
import type { AttackRun } from './evaluation-types.js';

/** One attack's verdict per image: its label for the images it attacked, −1 for those it did not. */
export interface AttackOutcome {
  pred: Int32Array;
  /** Images it attacked. */
  ranOn: number;
  seconds: number;
}

/** The attacks that never see a gradient: one of them beating every gradient attack is a sign of masking. */
export const GRADIENT_FREE: readonly AttackRun[] = ['square', 'rays'];
/** Attacks that run on every image even in a cascade (cheap, and their accuracy is kept as a figure). */
export const ALWAYS_FULL: readonly AttackRun[] = ['fgsm', 'pgd', 'pgd-margin', 'apgd-ce'];

export interface EnsembleSettings {
  epsilon: number;
  seed: number;
  apgdSteps: number;
  apgdTargets: number;
  squareQueries: number;
  raysQueries: number;
  log?: (line: string) => void;
}

/** 8-bit rounding inside [0, 1], as a tensor op: what APGD's iterates are judged on. */
const toBytes = (v: tf.Tensor4D) => tf.tidy(() => tf.div(tf.round(tf.mul(tf.clipByValue(v, 0, 1), 255)), 255) as tf.Tensor4D);

/** Runs one of the new attacks on the images `open` (indices into the sample); the others' labels are −1. */
export async function runEnsembleAttack(
  attack: 'apgd-ce' | 'apgd-t' | 'square' | 'rays',
  model: Model,
  images: Float32Array,
  shape: ImageShape,
  truth: Int32Array,
  open: number[],
  s: EnsembleSettings,
): Promise<AttackOutcome> {
  const started = performance.now();
  const n = truth.length;
  const size = shape[0] * shape[1] * shape[2];
  const pred = new Int32Array(n).fill(-1);
  const sub = new Float32Array(open.length * size);
  open.forEach((i, k) => sub.set(images.subarray(i * size, (i + 1) * size), k * size));
  const labels = Int32Array.from(open, (i) => truth[i]);
  let adversarial: Float32Array;
  if (open.length === 0) adversarial = sub;
  else if (attack === 'apgd-ce' || attack === 'apgd-t') {
    const x = imagesTensor(sub, open.length, shape);
    try {
      const base = { epsilon: s.epsilon, steps: s.apgdSteps, seed: s.seed, judge: toBytes };
      const r = attack === 'apgd-ce'
        ? apgd(model, x, labels, { ...base, loss: 'ce' })
        : apgdTargeted(model, x, labels, { ...base, targetClasses: s.apgdTargets, onTarget: (rank, standing) => s.log?.(`APGD-T ε ${s.epsilon}: target ${rank}/${s.apgdTargets}, ${standing} of ${open.length} images still robust`) });
      adversarial = quantise(r.adversarial.dataSync() as Float32Array);
      r.adversarial.dispose();
    } finally {
      x.dispose();
    }
  } else if (attack === 'square') {
    // The model's own scores: logits of the 8-bit image, the margin loss on them.
    const score = (batch: Float32Array, count: number) => {
      const t = imagesTensor(quantise(batch), count, shape);
      const out = tf.tidy(() => model.logits(t).dataSync() as Float32Array);
      t.dispose();
      return Promise.resolve(Float32Array.from(out));
    };
    const r = await squareAttack(sub, labels, open.length, score, {
      epsilon: s.epsilon, shape: [shape[0], shape[1], shape[2]], queriesPerImage: s.squareQueries, seed: s.seed,
      onIteration: (it, _asked, active) => {
        if (it % 1000 === 0) s.log?.(`Square ε ${s.epsilon}: iteration ${it}/${s.squareQueries}, ${active} images still searched`);
      },
    });
    adversarial = quantise(r.images);
  } else {
    // Label-only: RayS finds each image's nearest L∞ boundary along sign rays; it stops once inside ε.
    const label = (batch: Float32Array, count: number) => labelImages(model, batch, count);
    const specs = open.map((_, k) => {
      const x = sub.slice(k * size, (k + 1) * size);
      const y = labels[k];
      return { x, clean: y, adversarial: (l: number) => l !== y, start: (ctx: Parameters<typeof raysSearch>[0]) => raysSearch(ctx, { stopAt: s.epsilon }) };
    });
    const r = await runLockStep(specs, label, { norm: 'linf', queriesPerImage: s.raysQueries });
    adversarial = sub.slice();
    r.outcomes.forEach((o, k) => {
      // Only an example inside the ball counts; RayS's best may lie farther out when its budget ran out.
      if (o.image && o.linf !== null && o.linf <= s.epsilon + 1e-6) adversarial.set(o.image, k * size);
    });
  }
  const labelled = open.length ? labelImages(model, adversarial, open.length) : new Int32Array(0);
  open.forEach((i, k) => (pred[i] = labelled[k]));
  return { pred, ranOn: open.length, seconds: (performance.now() - started) / 1000 };
}

/** Images every attack so far left correctly labelled (clean-wrong images are never standing). */
export function standing(truth: Int32Array, clean: Int32Array, outcomes: AttackOutcome[]): number[] {
  const open: number[] = [];
  for (let i = 0; i < truth.length; i++) {
    if (clean[i] !== truth[i]) continue;
    if (outcomes.every((o) => o.pred[i] === -1 || o.pred[i] === truth[i])) open.push(i);
  }
  return open;
}

/**
 * The worst case per image: wrong under any attack (or cleanly) counts as wrong, with the label of the
 * first attack in run order that got it wrong; and how many images each attack broke first
 * (`clean`: wrong without any attack). The shares sum to the images the worst case gets wrong.
 */
export function worstCase(truth: Int32Array, clean: Int32Array, runs: [AttackRun, AttackOutcome][]): { pred: Int32Array; shares: Record<string, number> } {
  const shares: Record<string, number> = { clean: 0, ...Object.fromEntries(runs.map(([a]) => [a, 0])) };
  const pred = Int32Array.from(truth, (y, i) => {
    if (clean[i] !== y) {
      shares.clean++;
      return clean[i];
    }
    const hit = runs.find(([, o]) => o.pred[i] !== -1 && o.pred[i] !== y);
    if (!hit) return y;
    shares[hit[0]]++;
    return hit[1].pred[i];
  });
  return { pred, shares };
}
