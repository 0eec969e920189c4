/**
 * RayS (Chen & Gu, KDD 2020): a hard-label L∞ attack with no hyper-parameters. The adversarial
 * example is x + r·s for a sign vector s ∈ {−1, +1}^D; RayS looks for the sign vector whose ray
 * leaves the original decision region soonest. It keeps the best ray (s*, r*), and in a hierarchy
 * of ever finer blocks (the whole image, then halves, quarters, …, single pixels, then over again)
 * flips one block's signs at a time: one probe at x + r*·s' says whether the flipped ray is at
 * least as good (adversarial already at r*); only then a bisection on (0, r*) finds its own
 * radius, which replaces r* when smaller. A failed flip costs one query.
 *
 * Here the radius is searched in whole 8-bit steps k/255 (the victim only ever sees 8-bit images,
 * and x + (k/255)·s clipped to [0, 1] is then exactly representable): a ray's first test is at the
 * far corner k = 255 (every larger radius clips to the same image), and a bisection takes at most
 * 8 probes. The search never ends by itself before k* = 1; the caller's budget, or `stopAt`, ends it.
 */
import { quantiseInPlace, type ImageSearch, type SearchContext } from './search.js';

export interface RaysOptions {
  /** Stop once the best L∞ distance is ≤ this (default: never, spend the whole budget). */
  stopAt?: number;
  /** The first ray's signs (default all +1); a targeted attack starts towards an image of the target class. */
  initial?: Float32Array;
}

const K_MAX = 255;

function ray(x: Float32Array, s: Float32Array, k: number): Float32Array {
  const out = new Float32Array(x.length);
  const r = k / K_MAX;
  for (let p = 0; p < x.length; p++) out[p] = x[p] + r * s[p];
  return quantiseInPlace(out);
}

export function* raysSearch(ctx: SearchContext, opts: RaysOptions = {}): ImageSearch {
  const { x } = ctx;
  const dim = x.length;
  let s: Float32Array = opts.initial ? Float32Array.from(opts.initial, (v) => (v < 0 ? -1 : 1)) : new Float32Array(dim).fill(1);
  let kBest = Infinity;
  const stopK = opts.stopAt === undefined ? 0 : Math.floor(opts.stopAt * K_MAX + 1e-9);

  // Is the ray along `cand` better than the best one? If so it becomes the best.
  function* tryRay(cand: Float32Array): Generator<Float32Array, void, Int32Array> {
    let hi = Number.isFinite(kBest) ? kBest : K_MAX;
    const first = ray(x, cand, hi);
    const [l] = yield first;
    if (!ctx.adversarial(l)) return;
    let hiLabel = l;
    let hiImage = first;
    let lo = 0;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      const probe = ray(x, cand, mid);
      const [m] = yield probe;
      if (ctx.adversarial(m)) {
        hi = mid;
        hiLabel = m;
        hiImage = probe;
      } else lo = mid;
    }
    if (hi < kBest) {
      kBest = hi;
      s = cand;
      ctx.offer(hiImage, hiLabel);
    }
  }

  yield* tryRay(s);
  let level = 0;
  let block = 0;
  while (kBest > Math.max(1, stopK)) {
    const blocks = 2 ** level;
    const size = Math.max(1, Math.ceil(dim / blocks));
    const start = block * size;
    const end = Math.min(dim, start + size);
    const cand = s.slice();
    for (let p = start; p < end; p++) cand[p] = -cand[p];
    yield* tryRay(cand);
    block++;
    if (end >= dim) {
      if (size > 1) level++;
      block = 0;
    }
  }
}
