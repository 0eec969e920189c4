/**
 * Seeded randomness. TF.js initialisers and dropout draw their seeds from Math.random when
 * none is given, so seeding Math.random at the edge makes whole runs repeatable.
 */
export type Rng = () => number;

/** mulberry32: small, fast, good enough for shuffles and sampling. */
export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let globalDraws = 0;

/**
 * Replace Math.random with a seeded generator (TF.js weight init, dropout). Call once at start-up.
 * `skip` fast-forwards past that many draws, so an interrupted run resumes on the exact stream it
 * was on (globalRandomDraws() says how far that was).
 */
export function seedGlobalRandom(seed: number, skip = 0): void {
  const rng = createRng(seed ^ 0x5bd1e995);
  for (let i = 0; i < skip; i++) rng();
  globalDraws = skip;
  Math.random = () => {
    globalDraws++;
    return rng();
  };
}

/** Draws taken from the seeded Math.random since seedGlobalRandom. */
export function globalRandomDraws(): number {
  return globalDraws;
}

/** Fisher–Yates permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Algorithm R reservoir sample of k indices from 0..n-1 (Papernot 2016's cap on new points). */
export function reservoirSample(n: number, k: number, rng: Rng): Int32Array {
  if (k >= n) return permutation(n, rng).sort();
  const r = new Int32Array(k);
  for (let i = 0; i < k; i++) r[i] = i;
  for (let i = k; i < n; i++) {
    const j = Math.floor(rng() * (i + 1));
    if (j < k) r[j] = i;
  }
  return r.sort();
}

/** Uniform values in [-1, 1): deterministic inputs for tests and benchmarks, so failures reproduce. */
export function uniformSigned(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}
