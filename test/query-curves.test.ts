import { describe, expect, it } from 'vitest';
import { bestWithin, budgetCurve, epsilonSummaries, queriesForRate, queriesToReach } from '../adversary/query/curves.js';
import type { ImageOutcome, TracePoint } from '../adversary/query/search.js';

/** Budget curves read off improvement traces: [queries, L∞, L2, label]. */
const outcome = (trace: TracePoint[]): ImageOutcome => {
  const last = trace.at(-1);
  return { image: null, label: last?.[3] ?? null, linf: last?.[1] ?? null, l2: last?.[2] ?? null, queries: 300, trace, end: 'finished', flagged: 0, firstFlagged: null };
};
const outcomes = [
  outcome([[1, 0.9, 9, 3], [50, 0.25, 4, 3], [250, 0.15, 3, 3]]),
  outcome([[120, 0.35, 5, 8], [180, 0.29, 4.5, 8]]),
  outcome([]),
  outcome([[10, 0.05, 1, 7]]), // already wrong when clean: its true class is 1, the victim said 2
];
const input = { outcomes, truth: [0, 1, 2, 1], clean: [0, 1, 2, 2], queriesPerImage: 300 };

describe('query-attack budget curves', () => {
  it('reads the best example within a budget and the queries to reach ε', () => {
    expect(bestWithin(outcomes[0].trace, 49)).toEqual([1, 0.9, 9, 3]);
    expect(bestWithin(outcomes[0].trace, 50)).toEqual([50, 0.25, 4, 3]);
    expect(bestWithin(outcomes[2].trace, 300)).toBeNull();
    expect(queriesToReach(outcomes[1].trace, 0.3)).toBe(180);
    expect(queriesToReach(outcomes[1].trace, 0.2)).toBeNull();
  });

  it('success and misclassification per ε at each budget, up to the run\'s own budget', () => {
    const c = budgetCurve(input, [100, 200, 500], [0.1, 0.3]);
    expect(c.map((p) => p.queriesPerImage)).toEqual([100, 200, 300]);
    expect(c.map((p) => p.success['0.30'])).toEqual([0.5, 0.75, 0.75]);
    expect(c.map((p) => p.success['0.10'])).toEqual([0.25, 0.25, 0.25]);
    // The clean mistake (image 3) counts as misclassified at any ε.
    expect(c[0].misclassification['0.10']).toBe(0.25);
    expect(c[1].misclassification['0.30']).toBe(0.75);
    expect(c[2].medianLinf).toBeCloseTo(0.15, 9);
    expect(c[0].found).toBe(2);
  });

  it('median queries per ε, and the per-image budget that reaches a misclassification rate', () => {
    const e = epsilonSummaries(input, [0.3]);
    expect(e[0]).toEqual({ epsilon: 0.3, success: 0.75, medianQueries: 50 });
    expect(queriesForRate(input, 0.3, 0.25)).toBe(0); // the clean mistake alone
    expect(queriesForRate(input, 0.3, 0.5)).toBe(50);
    expect(queriesForRate(input, 0.3, 0.75)).toBe(180);
    expect(queriesForRate(input, 0.3, 1)).toBeNull();
  });
});
