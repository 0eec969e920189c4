import type { MaskingVerdict, ModelEvaluation, WhiteboxPoint } from './evaluation-types.js';

export type { MaskingVerdict };

/**
 * The gradient-masking check (Athalye, Carlini & Wagner 2018; Carlini et al. 2019, "On evaluating
 * adversarial robustness"): a model whose gradients were made useless rather than whose decisions were
 * made robust shows tell-tale inconsistencies between attacks. Any one of these is flagged:
 * 1. a single-step attack does much better against the model than the iterative ones — FGSM accuracy
 *    more than `FGSM_GAP` above the worst PGD accuracy at the same ε;
 * 2. accuracy that does not fall as ε grows (a larger ball contains every smaller one, so a working
 *    attack can only do better), beyond `MONOTONE_SLACK` of sampling noise;
 * 3. a black-box attack, crafted on a substitute that never saw the weights, succeeding more often than
 *    the white-box attacks on the model itself at some ε.
 * 4. an attack that never sees a gradient (Square on the model's scores, RayS on its labels) breaking more
 *    than `GRADIENT_FREE_GAP` of the images that every gradient attack run left standing (the worst case's
 *    shares: the gradient-free attacks run last, so what they broke first no gradient attack broke).
 * Passing proves nothing (an adaptive attack may still win); failing means the figures cannot be taken
 * as robustness. Rule 1 is about claimed robustness: on a model known to be undefended FGSM is weaker
 * than PGD simply because its loss is far from linear over the ball, so there it is reported as a note,
 * not counted.
 */
export const FGSM_GAP = 0.1;
export const MONOTONE_SLACK = 0.01;
export const GRADIENT_FREE_GAP = 0.02;


const f3 = (v: number) => v.toFixed(3);

export function maskingCheck(e: Pick<ModelEvaluation, 'whitebox' | 'campaign' | 'cleanAccuracyOnSample'> & { undefended?: boolean }): MaskingVerdict {
  const reasons: string[] = [];
  const notes: string[] = [];
  const epsilons = [...new Set(e.whitebox.map((p) => p.epsilon))].sort((a, b) => a - b);
  const at = (attack: WhiteboxPoint['attack'], eps: number) => e.whitebox.find((p) => p.attack === attack && p.epsilon === eps);
  const strongestPgd = (eps: number) => {
    const pgds = e.whitebox.filter((p) => p.epsilon === eps && (p.attack === 'pgd' || p.attack === 'pgd-margin') && p.accuracy !== null);
    return pgds.length ? pgds.reduce((a, b) => ((a.accuracy as number) <= (b.accuracy as number) ? a : b)) : undefined;
  };
  for (const eps of epsilons) {
    const f = at('fgsm', eps)?.accuracy;
    const p = strongestPgd(eps);
    if (f != null && p && f - (p.accuracy as number) > FGSM_GAP) {
      (e.undefended ? notes : reasons).push(`FGSM accuracy ${f3(f)} exceeds ${p.attack === 'pgd' ? 'PGD' : 'margin-PGD'}'s ${f3(p.accuracy as number)} by ${Math.round((f - (p.accuracy as number)) * 100)} points at ε ${eps}`);
    }
  }
  for (const attack of ['fgsm', 'pgd', 'pgd-margin', 'worst'] as const) {
    let previous: { eps: number; acc: number } | null = e.cleanAccuracyOnSample === null ? null : { eps: 0, acc: e.cleanAccuracyOnSample };
    for (const eps of epsilons) {
      const acc = at(attack, eps)?.accuracy;
      if (acc == null) continue;
      if (previous && acc > previous.acc + MONOTONE_SLACK) {
        reasons.push(`${attack} accuracy rises from ${f3(previous.acc)} at ε ${previous.eps} to ${f3(acc)} at ε ${eps}`);
      }
      previous = { eps, acc };
    }
  }
  for (const c of e.campaign?.points ?? []) {
    const w = at('worst', c.epsilon) ?? strongestPgd(c.epsilon);
    if (c.transferRate !== null && w?.successRate != null && c.transferRate > w.successRate) {
      reasons.push(`black-box transfer ${f3(c.transferRate)} exceeds the white-box success ${f3(w.successRate)} at ε ${c.epsilon}`);
    }
  }
  for (const eps of epsilons) {
    const w = at('worst', eps);
    const total = sampleSize(e, eps);
    const free = (w?.shares?.square ?? 0) + (w?.shares?.rays ?? 0);
    if (w?.shares && total > 0 && free / total > GRADIENT_FREE_GAP) {
      reasons.push(`gradient-free attacks broke ${free} images (${f3(free / total)} of the sample) that every gradient attack left standing at ε ${eps}`);
    }
  }
  return { suspected: reasons.length > 0, reasons, ...(notes.length ? { notes } : {}) };
}

export function describeVerdict(v: MaskingVerdict): string {
  const note = v.notes?.length ? ` (undefended model, not counted: ${v.notes.join('; ')})` : '';
  return (v.suspected ? `gradient masking suspected: ${v.reasons.join('; ')}` : 'no sign of gradient masking') + note;
}

/** Images attacked at ε: the size of any attack's run over the whole sample. */
function sampleSize(e: Pick<ModelEvaluation, 'whitebox'>, eps: number): number {
  return Math.max(0, ...e.whitebox.filter((p) => p.epsilon === eps && p.accuracy !== null && p.ranOn !== undefined).map((p) => p.ranOn as number));
}
