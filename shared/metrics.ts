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

/** The common length of arrays that must match; a mismatch is a programming error. */
export function sameLength(...arrays: ArrayLike<unknown>[]): number {
  const n = arrays[0].length;
  for (const a of arrays) {
    if (a.length !== n) {
      throw new TransferlabError('length_mismatch', `label arrays differ in length (${arrays.map((x) => x.length).join(' vs ')})`);
    }
  }
  return n;
}

/** hits / total, null (never NaN) when there is nothing to divide. */
export function ratio(hits: number, total: number): Rate {
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
