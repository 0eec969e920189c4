/**
 * Boundary maths, pure over Float32Arrays (count images of any H×W×C, row-major, values in [0, 1]):
 * - flipDistances: how far along a fixed direction each image must move before a classifier's label
 *   first changes, by a batched coarse scan and a bisection inside the first interval whose far end
 *   flips, so one routine measures the local substitute and the paid victim;
 * - planeGrid: the images of a 2-D slice through input space, for boundary maps.
 * Statistics over the distances live in metrics.ts (distanceSummary, boundaryGap).
 *
 * Every probe is clipped to [0, 1] and quantised to 8 bits first: the victim only ever sees 8-bit
 * images, so that is the only space in which its boundary can be located, and both models are probed
 * on exactly the same images.
 */
import { TransferlabError } from './errors.js';
import { quantise } from './datasets/images.js';
import type { Labeler } from './labeler.js';
import type { Rng } from './random.js';

/** Pixels are 8-bit, so ε is searched over whole steps k/255: 8 bisection steps cover 0..255. */
export const EPSILON_STEP = 1 / 255;

export interface FlipOptions {
  /** Largest ε searched, in (0, 1] (default 1); rounded down to whole 1/255 steps. */
  epsilonMax?: number;
  /** The labeler's labels at ε = 0 when already known (saves one call of `count` images). */
  reference?: Int32Array;
  /**
   * 'first' (default): scan ε in coarse steps of `scanStep`/255 until the label first differs, then
   * bisect inside that interval. 'bisect': bisect between 0 and ε_max (cheaper, but it can miss a
   * label that changes and changes back before ε_max, and can land on a later crossing).
   */
  search?: 'first' | 'bisect';
  /** Coarse scan step in 8-bit steps (default 16: 16 probes to ε 1, then 4 bisection probes). */
  scanStep?: number;
}

export interface FlipSearch {
  /**
   * Per image: the flip ε = k/255, a step whose label differs from the reference while the step
   * before it still has the reference label; null when no probed step differs (no flip found).
   * With 'first' it lies in the first coarse interval whose far end differs, so it is the first
   * crossing unless the label changes and changes back within one coarse step; with 'bisect' it is
   * one crossing, not necessarily the first, and a label that returns by ε_max is missed.
   */
  epsilons: (number | null)[];
  /** Per image: the label just past the flip, null when it never flips. */
  flippedTo: (number | null)[];
  /** The labels at ε = 0 (as given, or as asked for). */
  reference: Int32Array;
  /**
   * Labeler calls made: 'bisect' at most 1 (reference) + 1 (at epsilonMax) + ⌈log2 kMax⌉; 'first' at
   * most 1 + ⌈kMax/scanStep⌉ + ⌈log2 scanStep⌉, and an image stops scanning at its first flip.
   */
  calls: number;
  /** Images sent to the labeler in total. */
  labelled: number;
}

function fail(message: string): never {
  throw new TransferlabError('bad_boundary_input', message);
}

/** Values per image, read off the arrays: every array of one call holds `count` images of one size. */
function imageSize(count: number, ...arrays: [string, Float32Array][]): number {
  if (!Number.isInteger(count) || count < 0) fail(`count must be an integer ≥ 0, got ${count}`);
  const [first, a] = arrays[0];
  const size = count === 0 ? 0 : a.length / count;
  if (!Number.isInteger(size) || (count > 0 && size === 0)) fail(`${first} holds ${a.length} values, not a whole number of values for each of ${count} images`);
  for (const [name, b] of arrays) if (b.length !== count * size) fail(`${name} holds ${b.length} values; expected ${count} × ${size}`);
  return size;
}

/** The quantised images x_i + (k_i/255)·d_i for the chosen rows, packed into one batch. */
function probes(images: Float32Array, directions: Float32Array, rows: number[], steps: number[], size: number): Float32Array {
  const out = new Float32Array(rows.length * size);
  rows.forEach((row, j) => {
    const eps = steps[j] * EPSILON_STEP;
    const base = row * size;
    for (let p = 0; p < size; p++) out[j * size + p] = images[base + p] + eps * directions[base + p];
  });
  return quantise(out);
}

/**
 * The first ε (to 1/255) at which `label` changes along x + ε·d, for all images at once: one batched
 * call per step with every image still being scanned or bisected. A victim pays per image at most
 * ⌈kMax/scanStep⌉ + ⌈log2 scanStep⌉ queries with 'first' (20 for ε_max 1 and step 16; an image whose
 * label flips early stops scanning early), 1 + ⌈log2 kMax⌉ (9) with 'bisect'; plus one more
 * without `reference`.
 */
export async function flipDistances(
  images: Float32Array,
  directions: Float32Array,
  count: number,
  label: Labeler,
  opts: FlipOptions = {},
): Promise<FlipSearch> {
  const size = imageSize(count, ['images', images], ['directions', directions]);
  const epsilonMax = opts.epsilonMax ?? 1;
  if (!(epsilonMax > 0 && epsilonMax <= 1)) fail(`epsilonMax must be in (0, 1], got ${epsilonMax}`);
  // The 1e-9 keeps e.g. 0.3 (= 76.5/255 in floating point) from losing a step to rounding.
  const kMax = Math.floor(epsilonMax * 255 + 1e-9);
  if (kMax < 1) fail(`epsilonMax ${epsilonMax} is below one 8-bit step (1/255)`);
  if (opts.reference && opts.reference.length !== count) {
    fail(`reference has ${opts.reference.length} labels for ${count} images`);
  }

  let calls = 0;
  let labelled = 0;
  const ask = async (rows: number[], steps: number[]): Promise<Int32Array> => {
    calls++;
    labelled += rows.length;
    const got = await label(probes(images, directions, rows, steps, size), rows.length);
    if (got.length !== rows.length) fail(`labeler returned ${got.length} labels for ${rows.length} images`);
    return got;
  };

  const all = Array.from({ length: count }, (_, i) => i);
  const reference = count === 0 ? new Int32Array(0) : (opts.reference ?? (await ask(all, all.map(() => 0))));
  const epsilons: (number | null)[] = new Array<number | null>(count).fill(null);
  const flippedTo: (number | null)[] = new Array<number | null>(count).fill(null);
  if (count === 0) return { epsilons, flippedTo, reference, calls, labelled };

  // Invariant for every image being bisected: label(lo) = reference, label(hi) ≠ reference.
  const lo = new Int32Array(count);
  const hi = new Int32Array(count).fill(kMax);
  let active: number[];
  if ((opts.search ?? 'first') === 'bisect') {
    const far = await ask(all, all.map(() => kMax));
    active = all.filter((i) => far[i] !== reference[i]);
    for (const i of active) flippedTo[i] = far[i];
  } else {
    const step = opts.scanStep ?? 16;
    if (!Number.isInteger(step) || step < 1) fail(`scanStep must be an integer ≥ 1, got ${step}`);
    active = [];
    let scanning = all;
    for (let k = Math.min(step, kMax); scanning.length > 0; k = Math.min(k + step, kMax)) {
      const got = await ask(scanning, scanning.map(() => k));
      const still: number[] = [];
      scanning.forEach((i, j) => {
        if (got[j] !== reference[i]) {
          lo[i] = Math.max(0, k - step);
          hi[i] = k;
          flippedTo[i] = got[j];
          active.push(i);
        } else if (k < kMax) still.push(i);
      });
      scanning = still;
    }
  }
  for (;;) {
    active = active.filter((i) => hi[i] - lo[i] > 1);
    if (active.length === 0) break;
    const mids = active.map((i) => (lo[i] + hi[i]) >> 1);
    const got = await ask(active, mids);
    active.forEach((i, j) => {
      if (got[j] !== reference[i]) {
        hi[i] = mids[j];
        flippedTo[i] = got[j];
      } else {
        lo[i] = mids[j];
      }
    });
  }
  for (let i = 0; i < count; i++) if (flippedTo[i] !== null) epsilons[i] = hi[i] * EPSILON_STEP;
  return { epsilons, flippedTo, reference, calls, labelled };
}

/**
 * A random sign direction exactly orthogonal to d1 (entries in {−1, 0, +1}).
 * Start from uniform random ±1 signs; on d1's support the dot product is (#agree − #disagree), so
 * flip randomly chosen entries of the larger group until it is 0 — each flip moves it by 2. When the
 * support is odd-sized an exact 0 needs one entry set to 0 instead. Off the support the signs stay
 * uniform. This keeps d2 a sign vector (the same L∞ geometry as the attack direction) while making the
 * map's two axes exactly orthogonal, which Gram–Schmidt followed by re-signing would not.
 */
export function orthogonalSignDirection(d1: Float32Array, rng: Rng): Float32Array {
  const d2 = new Float32Array(d1.length);
  for (let p = 0; p < d1.length; p++) d2[p] = rng() < 0.5 ? -1 : 1;
  const agree: number[] = [];
  const disagree: number[] = [];
  for (let p = 0; p < d1.length; p++) {
    if (d1[p] === 0) continue;
    (Math.sign(d1[p]) === d2[p] ? agree : disagree).push(p);
  }
  const [more, fewer] = agree.length >= disagree.length ? [agree, disagree] : [disagree, agree];
  // Partial Fisher–Yates over the larger group: pick distinct random entries to flip.
  let excess = more.length - fewer.length;
  for (let j = 0; excess > 0; j++) {
    const k = j + Math.floor(rng() * (more.length - j));
    [more[j], more[k]] = [more[k], more[j]];
    if (excess === 1) d2[more[j]] = 0;
    else d2[more[j]] = -d2[more[j]];
    excess -= excess === 1 ? 1 : 2;
  }
  return d2;
}

export interface PlaneOptions {
  /** Points per axis (default 33); odd sizes put the original image on the centre point. */
  size?: number;
  /** Half-width of the square in ε units along each axis (default 0.5). */
  extent?: number;
  /** Draws d2 (use createRng(seed) so maps are repeatable). */
  rng: Rng;
}

export interface PlaneGrid {
  size: number;
  extent: number;
  /** Axis coordinates, ascending from −extent to +extent. */
  coords: number[];
  /** The second axis (the first is the given d1). */
  d2: Float32Array;
  /**
   * size × size quantised images in raster order, ready to be drawn: row r has b = coords[size−1−r]
   * (up is +d2), column c has a = coords[c] (right is +d1, the attack direction).
   */
  points: Float32Array;
}

/** The images clip(x + a·d1 + b·d2) on a square grid, quantised to 8 bits. */
export function planeGrid(x: Float32Array, d1: Float32Array, opts: PlaneOptions): PlaneGrid {
  const pixels = imageSize(1, ['x', x], ['d1', d1]);
  const size = opts.size ?? 33;
  const extent = opts.extent ?? 0.5;
  if (!Number.isInteger(size) || size < 2) fail(`grid size must be an integer ≥ 2, got ${size}`);
  if (!(extent > 0 && extent <= 1)) fail(`extent must be in (0, 1], got ${extent}`);
  const d2 = orthogonalSignDirection(d1, opts.rng);
  const coords = Array.from({ length: size }, (_, j) => -extent + (2 * extent * j) / (size - 1));
  const raw = new Float32Array(size * size * pixels);
  for (let r = 0; r < size; r++) {
    const b = coords[size - 1 - r];
    for (let c = 0; c < size; c++) {
      const a = coords[c];
      const base = (r * size + c) * pixels;
      for (let p = 0; p < pixels; p++) raw[base + p] = x[p] + a * d1[p] + b * d2[p];
    }
  }
  return { size, extent, coords, d2, points: quantise(raw) };
}
