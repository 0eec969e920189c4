import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { standing, worstCase, type AttackOutcome } from '../scripts/lab/evaluate-ensemble.js';
import { maskingCheck } from '../scripts/lab/masking.js';
import { ATTACK_RUNS, type AttackRun } from '../scripts/lab/evaluation-types.js';
import { accuracy } from '../shared/metrics.js';

/** Random labels for n images over 3 classes: a truth, a clean prediction and one prediction per attack (−1: not attacked). */
const scenario = fc.integer({ min: 1, max: 40 }).chain((n) =>
  fc.record({
    truth: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
    clean: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
    attacks: fc.array(fc.tuple(fc.constantFrom(...ATTACK_RUNS), fc.array(fc.integer({ min: -1, max: 2 }), { minLength: n, maxLength: n })), { minLength: 1, maxLength: 7 }),
  }),
);

describe('the worst case per image over every attack', () => {
  it('is never above any single attack that ran on every image, and its shares add up to the images it gets wrong', () => {
    fc.assert(
      fc.property(scenario, ({ truth, clean, attacks }) => {
        const y = Int32Array.from(truth);
        const c = Int32Array.from(clean);
        const runs = attacks.map(([a, p]) => [a, { pred: Int32Array.from(p), ranOn: p.filter((v) => v !== -1).length, seconds: 0 }] as [AttackRun, AttackOutcome]);
        const w = worstCase(y, c, runs);
        const worst = accuracy(w.pred, y) as number;
        for (const [, o] of runs) if (o.ranOn === y.length) expect(worst).toBeLessThanOrEqual(accuracy(o.pred, y) as number);
        expect(worst).toBeLessThanOrEqual(accuracy(c, y) as number);
        const wrong = w.pred.reduce((s, p, i) => s + (p !== y[i] ? 1 : 0), 0);
        expect(Object.values(w.shares).reduce((s, v) => s + v, 0)).toBe(wrong);
        // What is still standing is exactly what the worst case gets right.
        expect(standing(y, c, runs.map(([, o]) => o)).length).toBe(y.length - wrong);
      }),
      { seed: 25, numRuns: 300 },
    );
  });

  it('the masking check warns when gradient-free attacks break more than 2 points the gradient attacks left standing', () => {
    const base = { epsilon: 0.3, successRate: null, seconds: 1 };
    const verdict = (square: number) =>
      maskingCheck({
        cleanAccuracyOnSample: 1,
        campaign: null,
        whitebox: [
          { ...base, attack: 'pgd', accuracy: 0.9, ranOn: 1000, fooled: 100 },
          { ...base, attack: 'square', accuracy: null, ranOn: 900, fooled: square },
          { ...base, attack: 'worst', accuracy: (900 - square) / 1000, shares: { pgd: 100, square } },
        ],
      });
    expect(verdict(20).suspected).toBe(false);
    expect(verdict(21).suspected).toBe(true);
    expect(verdict(21).reasons[0]).toMatch(/gradient-free attacks broke 21 images/);
  });
});
