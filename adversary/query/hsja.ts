/**
 * HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020), L2 and L∞, hard-label. From an
 * adversarial starting point it repeats three steps:
 * 1. bisect between the original x and the current adversarial point to land just on the
 *    adversarial side of the boundary (L2: along the blend (1−α)x + α·x_adv; L∞: clipping x_adv to
 *    the box x ± α);
 * 2. estimate the boundary's normal there from n_t random probes at radius δ_t: the sign of each
 *    probe's answer (adversarial or not), mean-centred, weights its perturbation
 *    (n_t = 100·√t, at most 10,000);
 * 3. step along the estimate (L∞: its signs) by ξ = dist/√t, halving until the step is adversarial.
 * θ = 1/(d^{3/2}) (L2) or 1/d² (L∞) sets the bisection tolerance and δ_t = √d·θ·dist (L2) or
 * d·θ·dist (L∞), as in the authors' code.
 *
 * Departures forced by the 8-bit victim: every probe is rounded to 8 bits, and the gradient uses the
 * perturbations actually sent (rounded minus x_b). δ_t is kept ≥ √d/255, or the rounding would erase
 * most probes' perturbations and the estimate would be noise; L∞ bisections run on whole 8-bit steps.
 * An untargeted search starts from uniform noise the model labels adversarially (as the authors
 * do); a targeted one from an image of the target class.
 */
import type { Rng } from '../../shared/random.js';
import { distances, quantiseInPlace, type ImageSearch, type Norm, type SearchContext } from './search.js';

export interface HsjaOptions {
  norm: Norm;
  rng: Rng;
  /** Adversarial starting point (targeted attacks: an image of the target class). */
  start?: Float32Array;
  /** Stop once the best distance in `norm` is ≤ this (default: never). */
  stopAt?: number;
  /** Random starting points tried before giving up on an untargeted search (default 100). */
  initTries?: number;
}

const INIT_EVALS = 100;
const MAX_EVALS = 10_000;
/** Probes kept back for the step and the next bisection, so a gradient estimate never starves them. */
const RESERVE = 20;
const MAX_STEP_HALVINGS = 12;

function gaussian(rng: Rng): number {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** L2: (1−α)·x + α·y; L∞: y clipped to x ± α. Rounded to 8 bits. */
function project(x: Float32Array, y: Float32Array, alpha: number, norm: Norm): Float32Array {
  const out = new Float32Array(x.length);
  for (let p = 0; p < x.length; p++) {
    out[p] = norm === 'l2' ? (1 - alpha) * x[p] + alpha * y[p] : Math.min(x[p] + alpha, Math.max(x[p] - alpha, y[p]));
  }
  return quantiseInPlace(out);
}

export function* hsjaSearch(ctx: SearchContext, opts: HsjaOptions): ImageSearch {
  const { x } = ctx;
  const { norm, rng } = opts;
  const dim = x.length;
  const theta = norm === 'l2' ? 1 / (dim * Math.sqrt(dim)) : 1 / (dim * dim);
  const deltaMin = Math.sqrt(dim) / 255;
  const dist = (y: Float32Array) => {
    const d = distances(x, y);
    return norm === 'l2' ? d.l2 : d.linf;
  };

  // The starting point.
  let adv: Float32Array | null = null;
  let advLabel = -1;
  if (opts.start) {
    const s = quantiseInPlace(opts.start.slice());
    const [l] = yield s;
    if (ctx.adversarial(l)) [adv, advLabel] = [s, l];
  } else {
    for (let t = 0; t < (opts.initTries ?? 100) && adv === null; t++) {
      const noise = quantiseInPlace(Float32Array.from({ length: dim }, () => rng()));
      const [l] = yield noise;
      if (ctx.adversarial(l)) [adv, advLabel] = [noise, l];
    }
  }
  if (adv === null) return;
  ctx.offer(adv, advLabel);

  // Step 1: just on the adversarial side of the boundary between x and y.
  function* boundary(y: Float32Array, yLabel: number): Generator<Float32Array, Float32Array, Int32Array> {
    let best = y;
    let bestLabel = yLabel;
    if (norm === 'linf') {
      let hi = Math.round(distances(x, y).linf * 255);
      let lo = 0;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        const probe = project(x, y, mid / 255, norm);
        const [l] = yield probe;
        if (ctx.adversarial(l)) [hi, best, bestLabel] = [mid, probe, l];
        else lo = mid;
      }
    } else {
      // Blends closer than half an 8-bit step in every pixel round to the same images: stop there.
      const span = distances(x, y).linf;
      const tol = Math.max(theta, 0.5 / (255 * Math.max(span, 1e-9)));
      let [lo, hi] = [0, 1];
      while (hi - lo > tol) {
        const mid = (lo + hi) / 2;
        const probe = project(x, y, mid, norm);
        const [l] = yield probe;
        if (ctx.adversarial(l)) [hi, best, bestLabel] = [mid, probe, l];
        else lo = mid;
      }
    }
    ctx.offer(best, bestLabel);
    return best;
  }

  let xb = yield* boundary(adv, advLabel);
  for (let iter = 1; ; iter++) {
    if (opts.stopAt !== undefined && ctx.best() <= opts.stopAt) return;
    const d = dist(xb);
    // Step 2: the boundary's normal at xb from n random probes at radius δ.
    const n = Math.min(Math.floor(INIT_EVALS * Math.sqrt(iter)), MAX_EVALS, ctx.remaining() - RESERVE);
    if (n < 10) return;
    const deltaHsja = iter === 1 ? 0.1 : norm === 'l2' ? Math.sqrt(dim) * theta * d : dim * theta * d;
    const delta = Math.max(deltaHsja, deltaMin);
    const probes = new Float32Array(n * dim);
    const u = new Float32Array(dim);
    for (let b = 0; b < n; b++) {
      let sq = 0;
      for (let p = 0; p < dim; p++) {
        u[p] = norm === 'l2' ? gaussian(rng) : 2 * rng() - 1;
        sq += u[p] * u[p];
      }
      const scale = delta / Math.sqrt(sq);
      for (let p = 0; p < dim; p++) probes[b * dim + p] = xb[p] + scale * u[p];
    }
    quantiseInPlace(probes);
    const labels = yield probes;
    const f = Float64Array.from(labels, (l) => (ctx.adversarial(l) ? 1 : -1));
    const mean = f.reduce((a, b) => a + b, 0) / n;
    const grad = new Float64Array(dim);
    for (let b = 0; b < n; b++) {
      // Baseline subtraction (variance reduction), unless every probe agreed.
      const w = Math.abs(mean) === 1 ? mean : f[b] - mean;
      for (let p = 0; p < dim; p++) grad[p] += (w * (probes[b * dim + p] - xb[p])) / delta;
    }
    let gnorm = 0;
    for (let p = 0; p < dim; p++) gnorm += grad[p] * grad[p];
    gnorm = Math.sqrt(gnorm);
    if (gnorm === 0) return; // every probe rounded back onto xb: nothing to learn here
    const update = Float32Array.from(grad, (g) => (norm === 'l2' ? g / gnorm : Math.sign(g)));

    // Step 3: geometric step search along the estimate.
    let xi = d / Math.sqrt(iter);
    let next: Float32Array | null = null;
    let nextLabel = -1;
    for (let h = 0; h < MAX_STEP_HALVINGS && next === null; h++, xi /= 2) {
      const cand = new Float32Array(dim);
      for (let p = 0; p < dim; p++) cand[p] = xb[p] + xi * update[p];
      quantiseInPlace(cand);
      const [l] = yield cand;
      if (ctx.adversarial(l)) [next, nextLabel] = [cand, l];
    }
    // No adversarial step: estimate again at the same point, with more probes.
    if (next !== null) xb = yield* boundary(next, nextLabel);
  }
}
