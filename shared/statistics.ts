/**
 * Statistics of the boundary measures (docs/campaign.md, section Boundary measures): correlation, medians and
 * quantiles, and the per-image distance summaries the boundary run reports. Over plain arrays; null, never NaN,
 * where a statistic has no data (see metrics.ts for why).
 */
import { TransferlabError } from './errors.js';
import { ratio, sameLength, type Rate } from './metrics.js';

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
 * A distribution-free 95 % confidence interval for the median: the order statistics X(l) and X(n+1−l),
 * l the largest rank with P(Binomial(n, ½) < l) ≤ 2.5 % (for n = 100: the 40th and 61st values). It
 * holds for any continuous distribution, so it suits skewed boundary distances. Null below 6 values,
 * where no pair of order statistics covers the median with 95 % confidence.
 */
export function medianInterval(values: ArrayLike<number>): [number, number] | null {
  const n = values.length;
  const sorted = Float64Array.from(values).sort();
  if (sorted.some(Number.isNaN)) throw new TransferlabError('bad_value', 'median interval of values containing NaN');
  // Binomial(n, ½) probabilities in log space (2^−n underflows past n ≈ 1,070).
  let logP = -n * Math.LN2;
  let below = 0;
  let l = 0;
  for (let k = 0; k < n; k++) {
    const p = Math.exp(logP);
    if (below + p > 0.025) break;
    below += p;
    l = k + 1;
    logP += Math.log((n - k) / (k + 1));
  }
  return l === 0 ? null : [sorted[l - 1], sorted[n - l]];
}

/**
 * A 95 % confidence interval for Pearson's r over n pairs, by Fisher's z transform (r's sampling
 * distribution for roughly normal pairs); null for fewer than 4 pairs or |r| = 1.
 */
export function pearsonInterval(r: number | null, n: number): [number, number] | null {
  if (r === null || n < 4 || Math.abs(r) >= 1) return null;
  const z = Math.atanh(r);
  const half = 1.959964 / Math.sqrt(n - 3);
  return [Math.tanh(z - half), Math.tanh(z + half)];
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
