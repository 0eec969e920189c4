import { describe, expect, it } from 'vitest';
import type { WhiteboxPoint } from '../scripts/lab/evaluate.js';
import { describeVerdict, maskingCheck } from '../scripts/lab/masking.js';

/** The masking check on figures as an evaluation reports them: each rule on its own, then none. */
const points = (rows: Record<string, number[]>, epsilons = [0.1, 0.2, 0.3]): WhiteboxPoint[] =>
  Object.entries(rows).flatMap(([attack, accs]) =>
    accs.map((a, i) => ({ attack: attack as WhiteboxPoint['attack'], epsilon: epsilons[i], accuracy: a, successRate: 1 - a, seconds: 0 })),
  );

describe('maskingCheck', () => {
  it("flags the FGSM-hardened victim of docs/results/defences.md on both counts: FGSM far above PGD, and FGSM accuracy rising with ε", () => {
    const v = maskingCheck({
      cleanAccuracyOnSample: 0.986,
      campaign: null,
      whitebox: points({ fgsm: [0.907, 0.933, 0.922], pgd: [0.657, 0.083, 0.0], 'pgd-margin': [0.66, 0.09, 0.0], worst: [0.65, 0.08, 0.0] }),
    });
    expect(v.suspected).toBe(true);
    expect(v.reasons).toContain("FGSM accuracy 0.933 exceeds PGD's 0.083 by 85 points at ε 0.2");
    expect(v.reasons).toContain('fgsm accuracy rises from 0.907 at ε 0.1 to 0.933 at ε 0.2');
    expect(describeVerdict(v)).toMatch(/^gradient masking suspected: /);
  });

  it('flags black-box transfer above the white-box success at some ε', () => {
    const v = maskingCheck({
      cleanAccuracyOnSample: 0.99,
      whitebox: points({ fgsm: [0.97, 0.95, 0.93], pgd: [0.96, 0.93, 0.9], 'pgd-margin': [0.96, 0.93, 0.9], worst: [0.96, 0.93, 0.9] }),
      campaign: { runDir: '', attackQueries: 0, agreement: 0.9, durationSeconds: 0, points: [{ epsilon: 0.3, misclassificationRate: 0.2, transferRate: 0.15 }] },
    });
    expect(v).toEqual({ suspected: true, reasons: ['black-box transfer 0.150 exceeds the white-box success 0.100 at ε 0.3'] });
  });

  it('passes a model whose accuracy falls with ε under every attack, FGSM close to PGD, transfer below white-box', () => {
    const v = maskingCheck({
      cleanAccuracyOnSample: 0.988,
      whitebox: points({ fgsm: [0.97, 0.95, 0.92], pgd: [0.96, 0.92, 0.86], 'pgd-margin': [0.96, 0.92, 0.85], worst: [0.96, 0.91, 0.84] }),
      campaign: { runDir: '', attackQueries: 0, agreement: 0.9, durationSeconds: 0, points: [{ epsilon: 0.3, misclassificationRate: 0.05, transferRate: 0.04 }] },
    });
    expect(v).toEqual({ suspected: false, reasons: [] });
    expect(describeVerdict(v)).toBe('no sign of gradient masking');
  });

  it('notes, but does not count, FGSM far above PGD on a model known to be undefended', () => {
    const figures = { cleanAccuracyOnSample: 0.99, campaign: null, whitebox: points({ fgsm: [0.896, 0.502, 0.088], pgd: [0.734, 0.003, 0] }) };
    expect(maskingCheck(figures).suspected).toBe(true);
    const v = maskingCheck({ ...figures, undefended: true });
    expect(v.suspected).toBe(false);
    expect(v.notes).toContain("FGSM accuracy 0.896 exceeds PGD's 0.734 by 16 points at ε 0.1");
    expect(describeVerdict(v)).toMatch(/^no sign of gradient masking \(undefended model, not counted: /);
  });

  it('tolerates a one-point wobble from sampling noise but not more', () => {
    const base = { cleanAccuracyOnSample: 0.99, campaign: null };
    expect(maskingCheck({ ...base, whitebox: points({ pgd: [0.9, 0.905, 0.8] }) }).suspected).toBe(false);
    expect(maskingCheck({ ...base, whitebox: points({ pgd: [0.9, 0.92, 0.8] }) }).reasons).toEqual(['pgd accuracy rises from 0.900 at ε 0.1 to 0.920 at ε 0.2']);
  });
});
