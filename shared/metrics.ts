/**
 * The one definition of every campaign measure (docs/campaign.md, section Measures), over plain label arrays.
 *
 * A rate is `number | null`: null when its denominator is empty (no images, or — for the transfer
 * rate — no image the victim got right when clean). null rather than NaN because NaN does not survive
 * JSON (results.json) and silently poisons averages; callers must decide what an empty measure means.
 * Mismatched array lengths are a programming error and throw.
 */
import { TransferlabError } from './errors.js';

export type Labels = ArrayLike<number>;
export type Rate = number | null;

/** One point of an ε sweep, as results.json / results.csv record it. */
export interface SweepRow {
  epsilon: number;
  misclassificationRate: Rate;
  transferRate: Rate;
  /** null for untargeted attacks as well as for an empty denominator. */
  targetedSuccessRate: Rate;
}

function sameLength(...arrays: ArrayLike<unknown>[]): number {
  const n = arrays[0].length;
  for (const a of arrays) {
    if (a.length !== n) {
      throw new TransferlabError('length_mismatch', `label arrays differ in length (${arrays.map((x) => x.length).join(' vs ')})`);
    }
  }
  return n;
}

function ratio(hits: number, total: number): Rate {
  return total === 0 ? null : hits / total;
}

/** Share of predictions equal to the truth. */
export function accuracy(pred: Labels, truth: Labels): Rate {
  const n = sameLength(pred, truth);
  let hits = 0;
  for (let i = 0; i < n; i++) if (pred[i] === truth[i]) hits++;
  return ratio(hits, n);
}

/** Fidelity: share of images on which two models give the same label. */
export function agreement(a: Labels, b: Labels): Rate {
  return accuracy(a, b);
}

/** Share of adversarial examples the victim labels wrongly (over all of them). */
export function misclassificationRate(advPred: Labels, truth: Labels): Rate {
  const n = sameLength(advPred, truth);
  let wrong = 0;
  for (let i = 0; i < n; i++) if (advPred[i] !== truth[i]) wrong++;
  return ratio(wrong, n);
}

/**
 * Misclassification among the images the victim labelled correctly when clean — the attack's own
 * effect, not the victim's baseline error. Denominator: #{i : cleanPred[i] = truth[i]}.
 */
export function transferRate(advPred: Labels, cleanPred: Labels, truth: Labels): Rate {
  const n = sameLength(advPred, cleanPred, truth);
  let eligible = 0;
  let fooled = 0;
  for (let i = 0; i < n; i++) {
    if (cleanPred[i] !== truth[i]) continue;
    eligible++;
    if (advPred[i] !== truth[i]) fooled++;
  }
  return ratio(fooled, eligible);
}

/**
 * Share of adversarial examples the victim puts into their target class. With `truth`, images whose
 * true class already is the target are left out (they would count as successes without any attack).
 */
export function targetedSuccessRate(advPred: Labels, targets: Labels, truth?: Labels): Rate {
  const n = truth ? sameLength(advPred, targets, truth) : sameLength(advPred, targets);
  let eligible = 0;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    if (truth && truth[i] === targets[i]) continue;
    eligible++;
    if (advPred[i] === targets[i]) hits++;
  }
  return ratio(hits, eligible);
}

function checkClass(v: number, classes: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v >= classes) {
    throw new TransferlabError('bad_label', `${what} ${v} is out of range for ${classes} classes`);
  }
}

/** counts[t][p]: images of true class t predicted as p (rows truth, columns prediction). */
export function confusionMatrix(truth: Labels, pred: Labels, classes = 10): number[][] {
  const n = sameLength(truth, pred);
  const counts = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < n; i++) {
    checkClass(truth[i], classes, 'true label');
    checkClass(pred[i], classes, 'predicted label');
    counts[truth[i]][pred[i]]++;
  }
  return counts;
}

/** Misclassification rate per true class; null for classes with no images. */
export function perClassMisclassification(advPred: Labels, truth: Labels, classes = 10): Rate[] {
  const n = sameLength(advPred, truth);
  const total = new Array<number>(classes).fill(0);
  const wrong = new Array<number>(classes).fill(0);
  for (let i = 0; i < n; i++) {
    checkClass(truth[i], classes, 'true label');
    total[truth[i]]++;
    if (advPred[i] !== truth[i]) wrong[truth[i]]++;
  }
  return total.map((t, c) => ratio(wrong[c], t));
}

/** Transfer rate per true class; null for classes with no clean-correct image. */
export function perClassTransfer(advPred: Labels, cleanPred: Labels, truth: Labels, classes = 10): Rate[] {
  const n = sameLength(advPred, cleanPred, truth);
  const eligible = new Array<number>(classes).fill(0);
  const fooled = new Array<number>(classes).fill(0);
  for (let i = 0; i < n; i++) {
    checkClass(truth[i], classes, 'true label');
    if (cleanPred[i] !== truth[i]) continue;
    eligible[truth[i]]++;
    if (advPred[i] !== truth[i]) fooled[truth[i]]++;
  }
  return eligible.map((e, c) => ratio(fooled[c], e));
}

/** All three attack measures for one ε; `targets` only for targeted attacks. */
export function sweepRow(
  epsilon: number,
  advPred: Labels,
  cleanPred: Labels,
  truth: Labels,
  targets?: Labels,
): SweepRow {
  return {
    epsilon,
    misclassificationRate: misclassificationRate(advPred, truth),
    transferRate: transferRate(advPred, cleanPred, truth),
    targetedSuccessRate: targets ? targetedSuccessRate(advPred, targets, truth) : null,
  };
}

/**
 * Mean L2 norm of the perturbation, ‖x_adv − x‖₂ per image averaged over the images (in the images'
 * own units, [0, 1] pixels; of what is actually sent, so after 8-bit quantisation). Transfer methods can
 * win partly by spending more L2 under the same L∞ bound: report it beside every rate. null for no images.
 */
export function meanPerturbationL2(adversarial: ArrayLike<number>, clean: ArrayLike<number>, pixelsPerImage: number): number | null {
  sameLength(adversarial, clean);
  if (!Number.isInteger(pixelsPerImage) || pixelsPerImage < 1 || clean.length % pixelsPerImage !== 0) {
    throw new TransferlabError('length_mismatch', `${clean.length} values are not whole images of ${pixelsPerImage} pixels`);
  }
  const n = clean.length / pixelsPerImage;
  if (n === 0) return null;
  let total = 0;
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let j = i * pixelsPerImage; j < (i + 1) * pixelsPerImage; j++) sq += (adversarial[j] - clean[j]) ** 2;
    total += Math.sqrt(sq);
  }
  return total / n;
}

/** Pearson's linear correlation; null with fewer than two points or when either side is constant. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  const n = sameLength(x, y);
  if (n < 2) return null;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  // Centred two-pass sums: the one-pass Σxy − n·x̄ȳ form cancels catastrophically on close values.
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return null;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** Median (mean of the middle two for even counts); null when empty. NaN entries are not allowed. */
export function median(values: ArrayLike<number>): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  if (sorted.some(Number.isNaN)) throw new TransferlabError('bad_value', 'median of values containing NaN');
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Linear-interpolation quantile (numpy's default, "type 7"), q in [0, 1]; null when empty.
 * quantile(v, 0.5) equals median(v).
 */
export function quantile(values: ArrayLike<number>, q: number): number | null {
  if (!(q >= 0 && q <= 1)) throw new TransferlabError('bad_value', `quantile level must be in [0, 1], got ${q}`);
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  if (sorted.some(Number.isNaN)) throw new TransferlabError('bad_value', 'quantile of values containing NaN');
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * A boundary distance per image: the ε at which a model's label flips, or null when it never
 * flips within the searched range (shared/boundary.ts, flipDistances).
 */
export type Distance = number | null;

/** One model's distance distribution; the quantiles are over the images that flipped. */
export interface DistanceSummary {
  images: number;
  flipped: number;
  /** Share of images whose label flips within the searched range. */
  flipRate: Rate;
  min: number | null;
  q25: number | null;
  median: number | null;
  q75: number | null;
  max: number | null;
}

export function distanceSummary(distances: readonly Distance[]): DistanceSummary {
  const finite = distances.filter((d): d is number => d !== null);
  return {
    images: distances.length,
    flipped: finite.length,
    flipRate: ratio(finite.length, distances.length),
    min: quantile(finite, 0),
    q25: quantile(finite, 0.25),
    median: quantile(finite, 0.5),
    q75: quantile(finite, 0.75),
    max: quantile(finite, 1),
  };
}

/** How the victim's boundary lies relative to the substitute's, image by image. */
export interface BoundaryGap {
  substitute: DistanceSummary;
  victim: DistanceSummary;
  /** Images where both labels flip: the sample for `pearson` and `medianGap`. */
  bothFlipped: number;
  pearson: number | null;
  /** Images where at least one label flips: the denominator of the three shares below. */
  compared: number;
  victimNearer: Rate;
  victimFarther: Rate;
  equal: Rate;
  /** Median of (victim − substitute) distance where both flip: > 0 means the victim is the more robust. */
  medianGap: number | null;
}

/**
 * Compare two distance lists over the same images. A never-flipping image counts as infinitely far
 * for nearer/farther (a flip at any ε is nearer than none), but is left out of the correlation and the
 * gap, which need numbers; images where neither flips say nothing about the order and are left out.
 */
export function boundaryGap(substitute: readonly Distance[], victim: readonly Distance[]): BoundaryGap {
  const n = sameLength(substitute, victim);
  const s: number[] = [];
  const v: number[] = [];
  let compared = 0;
  let nearer = 0;
  let farther = 0;
  for (let i = 0; i < n; i++) {
    const ds = substitute[i] ?? Infinity;
    const dv = victim[i] ?? Infinity;
    if (ds === Infinity && dv === Infinity) continue;
    compared++;
    if (dv < ds) nearer++;
    else if (dv > ds) farther++;
    if (ds !== Infinity && dv !== Infinity) {
      s.push(ds);
      v.push(dv);
    }
  }
  return {
    substitute: distanceSummary(substitute),
    victim: distanceSummary(victim),
    bothFlipped: s.length,
    pearson: pearson(s, v),
    compared,
    victimNearer: ratio(nearer, compared),
    victimFarther: ratio(farther, compared),
    equal: ratio(compared - nearer - farther, compared),
    medianGap: median(v.map((dv, i) => dv - s[i])),
  };
}
