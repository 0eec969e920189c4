/**
 * The Shapiro–Wilk normality test, by Royston's 1992/1995 approximation (algorithm AS R94, the one
 * behind scipy.stats.shapiro and R's shapiro.test), for 3 ≤ n ≤ 5000.
 *
 * PRADA (victim/detect/prada.ts) flags a client when W of its pooled query distances falls below δ, so W
 * must match the reference implementations: test/prada.test.ts checks it against scipy's values.
 * The coefficients a_i depend on n only, so they are cached per n: a detector that evaluates W after
 * every query over a window of at most N values computes each coefficient vector once per process.
 */
import { TransferlabError } from '../../shared/errors.js';

export const SW_MIN_N = 3;
export const SW_MAX_N = 5000;

/** c0 + c1·x + c2·x² + … (AS R94's poly). */
function poly(c: readonly number[], x: number): number {
  let r = 0;
  for (let i = c.length - 1; i >= 0; i--) r = r * x + c[i];
  return r;
}

/** Standard normal quantile, Wichura's AS 241 (PPND16, about 16 significant digits). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    return Number.NaN;
  }
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (
      (q * poly([3.3871328727963665, 133.14166789178438, 1971.5909503065513, 13731.69376550946, 45921.95393154987, 67265.7709270087, 33430.57558358813, 2509.0809287301227], r)) /
      poly([1, 42.31333070160091, 687.1870074920579, 5394.196021424751, 21213.794301586597, 39307.89580009271, 28729.085735721943, 5226.495278852854], r)
    );
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  let val: number;
  if (r <= 5) {
    r -= 1.6;
    val =
      poly([1.4234371107496835, 4.630337846156546, 5.769497221460691, 3.6478483247632045, 1.2704582524523684, 0.2417807251774506, 0.022723844989269184, 0.0007745450142783414], r) /
      poly([1, 2.053191626637759, 1.6763848301838038, 0.6897673349851, 0.14810397642748008, 0.015198666563616457, 0.0005475938084995345, 1.0507500716444169e-9], r);
  } else {
    r -= 5;
    val =
      poly([6.657904643501103, 5.463784911164114, 1.7848265399172913, 0.29656057182850487, 0.026532189526576124, 0.0012426609473880784, 2.7115555687434876e-5, 2.0103343992922881e-7], r) /
      poly([1, 0.599832206555888, 0.1369298809227358, 0.014875361290850615, 0.0007868691311456133, 1.8463183175100548e-5, 1.421511758316446e-7, 2.0442631033899397e-15], r);
  }
  return q < 0 ? -val : val;
}

/** Upper tail of the standard normal, 1 − Φ(z), via Numerical Recipes' erfcc (Chebyshev fit, relative error < 1.2e-7). */
export function normalUpperTail(z: number): number {
  const x = z / Math.SQRT2;
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.5 * ax);
  const erfc =
    t *
    Math.exp(
      -ax * ax - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return 0.5 * (x >= 0 ? erfc : 2 - erfc);
}

const C1 = [0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
const C2 = [0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];
const C3 = [0.544, -0.39978, 0.025054, -6.714e-4];
const C4 = [1.3822, -0.77857, 0.062767, -0.0020322];
const C5 = [-1.5861, -0.31082, -0.083751, 0.0038915];
const C6 = [-0.4803, -0.082676, 0.0030302];
const G = [-2.273, 0.459];

const coefficientCache = new Map<number, Float64Array>();

/**
 * Royston's coefficients a_1 … a_⌊n/2⌋ (a_1 weighs the extreme pair x_(n) − x_(1)); Σ over the full
 * antisymmetric vector of a² is 1. Cached per n (at most n/2 doubles each).
 */
export function swCoefficients(n: number): Float64Array {
  const hit = coefficientCache.get(n);
  if (hit) return hit;
  const half = Math.floor(n / 2);
  const a = new Float64Array(half);
  if (n === 3) {
    a[0] = Math.SQRT1_2;
  } else {
    const m = new Float64Array(half);
    let summ2 = 0;
    for (let i = 0; i < half; i++) {
      m[i] = normalQuantile((i + 1 - 0.375) / (n + 0.25)); // negative: the lower expected order statistics
      summ2 += m[i] * m[i];
    }
    summ2 *= 2;
    const ssumm2 = Math.sqrt(summ2);
    const rsn = 1 / Math.sqrt(n);
    const a1 = poly(C1, rsn) - m[0] / ssumm2;
    let first: number;
    let fac: number;
    if (n > 5) {
      const a2 = -m[1] / ssumm2 + poly(C2, rsn);
      fac = Math.sqrt((summ2 - 2 * m[0] * m[0] - 2 * m[1] * m[1]) / (1 - 2 * a1 * a1 - 2 * a2 * a2));
      a[1] = a2;
      first = 2;
    } else {
      fac = Math.sqrt((summ2 - 2 * m[0] * m[0]) / (1 - 2 * a1 * a1));
      first = 1;
    }
    a[0] = a1;
    for (let i = first; i < half; i++) a[i] = -m[i] / fac;
  }
  coefficientCache.set(n, a);
  return a;
}

export interface ShapiroWilk {
  /** W in (0, 1]; near 1 for normal samples. */
  w: number;
  /** Royston's p-value for H0 "the sample is normal". */
  p: number;
}

/**
 * W for values already sorted ascending (the detector keeps its window sorted, so no copy or sort
 * is needed per query). A sample with zero range is reported as W = 1, p = 1: nothing to reject.
 */
export function shapiroWilkSorted(x: ArrayLike<number>, n = x.length): ShapiroWilk {
  if (!Number.isInteger(n) || n < SW_MIN_N || n > SW_MAX_N || n > x.length) {
    throw new TransferlabError('bad_sample', `Shapiro–Wilk needs ${SW_MIN_N}..${SW_MAX_N} values, got ${n}`);
  }
  const range = x[n - 1] - x[0];
  if (!(range > 1e-19 * Math.max(1, Math.abs(x[0])))) return { w: 1, p: 1 };
  const a = swCoefficients(n);
  // Scaled by the range, as AS R94 does, to keep the sums well conditioned.
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i] / range;
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i] / range - mean;
    ss += d * d;
  }
  let num = 0;
  for (let i = 0; i < a.length; i++) num += a[i] * (x[n - 1 - i] - x[i]) / range;
  const w = Math.min(1, (num * num) / ss);
  return { w, p: swPValue(w, n) };
}

/** Shapiro–Wilk of any sample (copied and sorted). */
export function shapiroWilk(values: ArrayLike<number>): ShapiroWilk {
  const sorted = Float64Array.from(values).sort();
  if (sorted.some(Number.isNaN)) throw new TransferlabError('bad_sample', 'Shapiro–Wilk of values containing NaN');
  return shapiroWilkSorted(sorted);
}

function swPValue(w: number, n: number): number {
  if (n === 3) return Math.max(0, (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.PI / 3));
  const w1 = 1 - w;
  if (w1 <= 0) return 1;
  let y = Math.log(w1);
  let m: number;
  let s: number;
  if (n <= 11) {
    const gamma = poly(G, n);
    if (y >= gamma) return 1e-99;
    y = -Math.log(gamma - y);
    m = poly(C3, n);
    s = Math.exp(poly(C4, n));
  } else {
    const ln = Math.log(n);
    m = poly(C5, ln);
    s = Math.exp(poly(C6, ln));
  }
  return normalUpperTail((y - m) / s);
}
