/**
 * The confidence intervals the report gives the boundary measures: the median's from order statistics,
 * Pearson's r's from Fisher's z. Checked against published values and by coverage on seeded samples.
 */
import { describe, expect, it } from 'vitest';
import { distanceSummary, median, medianInterval, pearson, pearsonInterval } from '../shared/statistics.js';
import { nearestSection } from '../adversary/report/nearest.js';
import type { NearestBoundary } from '../adversary/campaign/boundary-nearest.js';
import { createRng } from '../shared/random.js';

const ranks = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('medianInterval', () => {
  it('takes the order statistics of the binomial tables: 40th and 61st of 100, 8th and 18th of 25, 1st and 6th of 6', () => {
    expect(medianInterval(ranks(100))).toEqual([40, 61]);
    expect(medianInterval(ranks(25))).toEqual([8, 18]);
    expect(medianInterval(ranks(6))).toEqual([1, 6]);
    // Past n ≈ 1,070, 2^−n underflows: the log-space sum still finds the normal approximation's ranks (n/2 ∓ 0.98 √n).
    const [lo, hi] = medianInterval(ranks(5000))!;
    expect(lo).toBeGreaterThanOrEqual(2430);
    expect(lo).toBeLessThanOrEqual(2432);
    expect(hi).toBe(5001 - lo);
  });

  it('sorts its input and has no interval below 6 values', () => {
    expect(medianInterval([5, 3, 1, 2, 4, 6].reverse())).toEqual([1, 6]);
    expect(medianInterval([1, 2, 3, 4, 5])).toBeNull();
    expect(medianInterval([])).toBeNull();
    expect(() => medianInterval([1, Number.NaN, 2, 3, 4, 5, 6])).toThrow(/NaN/);
  });

  it('covers the true median at least 95 % of the time (2,000 seeded samples of 30 skewed values)', () => {
    const rng = createRng(11);
    // Exponential with rate 1: the true median is ln 2.
    let covered = 0;
    let around = 0;
    for (let t = 0; t < 2000; t++) {
      const sample = Array.from({ length: 30 }, () => -Math.log(1 - rng()));
      const [lo, hi] = medianInterval(sample)!;
      if (lo <= Math.LN2 && Math.LN2 <= hi) covered++;
      const m = median(sample)!;
      if (lo <= m && m <= hi) around++;
    }
    expect(covered / 2000).toBeGreaterThanOrEqual(0.94);
    expect(around).toBe(2000);
  });
});

describe('pearsonInterval', () => {
  it('is tanh(atanh r ± 1.96 / √(n − 3)): r 0.47 over 100 pairs gives 0.30–0.61', () => {
    const [lo, hi] = pearsonInterval(0.47, 100)!;
    expect(lo).toBeCloseTo(0.3, 2);
    expect(hi).toBeCloseTo(0.61, 2);
    expect(pearsonInterval(null, 100)).toBeNull();
    expect(pearsonInterval(0.5, 3)).toBeNull();
    expect(pearsonInterval(1, 50)).toBeNull();
  });

  it('narrows as pairs are added and holds r inside', () => {
    const rng = createRng(3);
    const x = Array.from({ length: 200 }, () => rng());
    const y = x.map((v) => v + rng());
    const r = pearson(x, y)!;
    const wide = pearsonInterval(r, 30)!;
    const narrow = pearsonInterval(r, 200)!;
    expect(wide[0]).toBeLessThan(r);
    expect(wide[1]).toBeGreaterThan(r);
    expect(narrow[1] - narrow[0]).toBeLessThan(wide[1] - wide[0]);
  });
});

describe("the report's boundary table", () => {
  it('shows each median with its interval and the correlation with its own', () => {
    const victim = Array.from({ length: 100 }, (_, i) => (i + 1) / 400);
    const substitute = victim.map((v, i) => (i % 10 === 0 ? null : v + 0.01));
    const nearest: NearestBoundary = {
      method: 'rays', images: 100, queriesPerImage: 200, victim, substitute,
      victimSummary: distanceSummary(victim), substituteSummary: distanceSummary(substitute),
      pearson: 0.47, cosine: [], medianCosine: 0.5, adbd: { victim: [], substitute: [] }, queries: 19_880, probes: 20_000,
    };
    const html = nearestSection(nearest);
    // The victim's 40th and 61st distances (0.1, 0.1525); r over the 90 images both found: Fisher 0.291–0.617.
    expect(html).toContain('0.126 (0.100–0.152)');
    expect(html).toContain('<b>0.47</b> (0.291–0.617)');
    expect(html).toContain('median (95 % CI)');
  });
});
