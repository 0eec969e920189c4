/**
 * Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), L∞, untargeted: a score-based
 * black-box attack by random search. Written from the paper and the authors' reference
 * (max-andr/square-attack, attack.py `square_attack_linf`, `p_selection`); not a port of its code.
 *
 * - Start: x + ε·s with s ∈ {−1, +1} drawn per column and channel (vertical stripes, constant down each
 *   column), clipped to [0, 1] — one query.
 * - Each iteration, per image still correctly classified: a square window of side
 *   s = round(√(p·H·W)) (clamped to 1 … min(H, W) − 1) at a uniformly random position gets a fresh
 *   ±ε per channel, constant over the window; a draw that would leave the current best image unchanged is
 *   drawn again. The candidate x + δ (clipped to [0, 1]) costs one query and replaces the best when its
 *   margin is lower.
 * - p follows the paper's piece-wise constant schedule over the iteration budget (halved at 0.1 %, 0.5 %,
 *   2 %, 5 %, 10 %, 20 %, 40 %, 60 % and 80 % of it), from `pInit` (the reference's L∞ default 0.05).
 * - Loss: the margin, true class's score minus the best other's (no cross-entropy); an image is fooled
 *   once it is < 0 and asks nothing more. Every iterate stays in the ε-ball and in [0, 1], because
 *   δ ∈ {−ε, 0, +ε} per pixel before the clip.
 *
 * Each image has its own random stream (seed, index), so its probes depend only on its own answers:
 * a rerun over cached answers asks exactly the same probes again. One scorer call per iteration carries
 * every active image's candidate (one batch for a victim); `queries` counts every row sent.
 *
 * A row answered with no score at all (every class NaN: a probe the victim refused, as the oracle
 * answers one) is counted in `refused`, and tells nothing: it never makes an image fooled nor better.
 */
import { TransferlabError } from '../errors.js';
import { createRng, type Rng } from '../random.js';

/**
 * count × classes scores (probabilities or logits) for count row-major H×W×C images; NaN for a class an
 * answer did not give, and in every class of a probe that was refused.
 */
export type Scorer = (images: Float32Array, count: number) => Promise<Float32Array>;

export interface SquareOptions {
  epsilon: number;
  /** [H, W, C] of one image. */
  shape: readonly [number, number, number];
  /** Per-image query budget, the starting query included; also the length of the p schedule. */
  queriesPerImage: number;
  /** Fraction of pixels a window covers at first (default 0.05, the paper's L∞ setting). */
  pInit?: number;
  seed?: number;
  /** The loss of one image's scores (default `marginLoss`); fooled when < 0. */
  loss?: (scores: Float32Array, label: number) => number;
  /** After each iteration: its number, the rows asked, images still active. */
  onIteration?: (iteration: number, asked: number, active: number) => void;
  /**
   * A scorer error this says is a stop (a key's budget running out) ends the attack with what it found,
   * `stopped` set; any other error is thrown.
   */
  stopOn?: (error: unknown) => boolean;
}

export interface SquareResult {
  /** Each image's best iterate (its lowest margin), count × pixels. */
  images: Float32Array;
  /** Queries each image asked (starting query included). */
  queries: Int32Array;
  /** Each image's lowest margin; < 0: fooled. */
  margins: Float64Array;
  /** Rows sent to the scorer in all (the sum of `queries`). */
  asked: number;
  /** Per image, its rows answered with no score at all (refused probes), included in `queries`. */
  refused: Int32Array;
  /** Per image, its query count at its first refused row (null: none refused). */
  firstRefused: (number | null)[];
  iterations: number;
  /** The error `stopOn` accepted, when one ended the attack early; the images still active then were cut short. */
  stopped: unknown;
}

const fail = (message: string): never => {
  throw new TransferlabError('bad_attack_input', message);
};

/** The paper's schedule: p_init halved at fixed fractions of the iteration budget. */
export function squareP(pInit: number, iteration: number, iterations: number): number {
  const at = Math.floor((iteration / iterations) * 10_000);
  const steps = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let halvings = 0;
  for (const s of steps) if (at > s) halvings++;
  // Past the budget (at > 10000) the reference goes back to p_init; a run never gets there.
  return at > 10_000 ? pInit : pInit / 2 ** halvings;
}

/** The side of the square window for a fraction p of the image's H·W positions. */
export function squareSide(p: number, h: number, w: number): number {
  const s = Math.round(Math.sqrt(p * h * w));
  return Math.max(1, Math.min(s, Math.max(1, Math.min(h, w) - 1)));
}

/**
 * Untargeted margin: score[label] − max over the other classes. NaN marks a class a top-k answer left
 * out (scores are then probabilities): a missing true class is not the top-1, so the image is fooled
 * (−1); a missing other class scores at most min(smallest given, 1 − sum given), which is used for it.
 */
export function marginLoss(scores: Float32Array, label: number): number {
  const own = scores[label];
  if (Number.isNaN(own)) return -1;
  let best = -Infinity;
  let missing = false;
  let given = 0;
  let smallest = Infinity;
  for (let k = 0; k < scores.length; k++) {
    const v = scores[k];
    if (Number.isNaN(v)) {
      missing = true;
      continue;
    }
    given += v;
    if (v < smallest) smallest = v;
    if (k !== label && v > best) best = v;
  }
  if (missing) best = Math.max(best, Math.max(0, Math.min(smallest, 1 - given)));
  return own - best;
}

interface ImageState {
  x: Float32Array;
  best: Float32Array;
  margin: number;
  rng: Rng;
  queries: number;
  refused: number;
  firstRefused: number | null;
}

const clip01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

function stripes(x: Float32Array, eps: number, [h, w, c]: readonly [number, number, number], rng: Rng): Float32Array {
  const signs = Array.from({ length: w * c }, () => (rng() < 0.5 ? -eps : eps));
  const out = new Float32Array(x.length);
  for (let r = 0; r < h; r++) for (let q = 0; q < w * c; q++) out[r * w * c + q] = clip01(x[r * w * c + q] + signs[q]);
  return out;
}

/** The next candidate: the best image with one window redrawn to x ± ε per channel, never equal to the best. */
function candidate(st: ImageState, eps: number, side: number, [h, w, c]: readonly [number, number, number]): Float32Array {
  const next = st.best.slice();
  for (let attempt = 0; ; attempt++) {
    const top = Math.floor(st.rng() * (h - side + 1));
    const left = Math.floor(st.rng() * (w - side + 1));
    // A window whose every draw leaves it unchanged (possible only at ε = 0) moves instead of looping.
    for (let draw = 0; draw < 8 * (c + 1); draw++) {
      const signs = Array.from({ length: c }, () => (st.rng() < 0.5 ? -eps : eps));
      let changed = false;
      for (let r = top; r < top + side; r++) {
        for (let q = left; q < left + side; q++) {
          for (let ch = 0; ch < c; ch++) {
            const p = (r * w + q) * c + ch;
            const v = clip01(st.x[p] + signs[ch]);
            if (Math.abs(v - st.best[p]) >= 1e-7) changed = true;
            next[p] = v;
          }
        }
      }
      if (changed) return next;
    }
    if (attempt > 64) return next; // ε so small nothing changes: spend the query, as the budget allows
  }
}

/**
 * Square Attack on `count` images (count × H×W×C, values in [0, 1]) against the scorer, leaving
 * `labels` (their true or clean classes). Stops each image once fooled or out of queries.
 */
export async function squareAttack(images: Float32Array, labels: ArrayLike<number>, count: number, score: Scorer, opts: SquareOptions): Promise<SquareResult> {
  const { epsilon: eps, shape, queriesPerImage: budget } = opts;
  const [h, w, c] = shape;
  const pixels = h * w * c;
  if (![h, w, c].every((v) => Number.isInteger(v) && v >= 1)) fail(`image shape must be three positive integers, got ${shape.join('×')}`);
  if (!Number.isInteger(count) || count < 0 || images.length !== count * pixels) fail(`${images.length} values do not hold ${count} images of ${shape.join('×')}`);
  if (labels.length !== count) fail(`${labels.length} labels for ${count} images`);
  if (!(eps >= 0 && eps <= 1)) fail(`ε must be in [0, 1], got ${eps}`);
  if (!Number.isInteger(budget) || budget < 1) fail(`queries per image must be an integer ≥ 1, got ${budget}`);
  const pInit = opts.pInit ?? 0.05;
  if (!(pInit > 0 && pInit <= 1)) fail(`p_init must be in (0, 1], got ${pInit}`);
  const given = opts.loss ?? marginLoss;
  // A loss with no value tells nothing: it never counts as fooled nor as better.
  const loss = (scores: Float32Array, label: number) => {
    const m = given(scores, label);
    return Number.isNaN(m) ? Infinity : m;
  };
  /** A row with no score at all is a refusal (the margin would read its missing true class as fooled). */
  const isRefused = (scores: Float32Array) => scores.every((v) => Number.isNaN(v));
  const seed = opts.seed ?? 0;

  const ask = async (rows: Float32Array[]): Promise<Float32Array[]> => {
    const batch = new Float32Array(rows.length * pixels);
    rows.forEach((r, i) => batch.set(r, i * pixels));
    const out = await score(batch, rows.length);
    const classes = out.length / rows.length;
    if (!Number.isInteger(classes) || classes < 2) {
      throw new TransferlabError('victim_bad_response', `the scorer answered ${out.length} values for ${rows.length} images`, 502);
    }
    return rows.map((_, i) => out.subarray(i * classes, (i + 1) * classes));
  };

  const states: ImageState[] = [];
  for (let i = 0; i < count; i++) {
    const x = images.subarray(i * pixels, (i + 1) * pixels);
    const rng = createRng((seed ^ 0x5bd1e995) + i * 7919);
    states.push({ x, best: stripes(x, eps, shape, rng), margin: Infinity, rng, queries: 0, refused: 0, firstRefused: null });
  }
  let asked = 0;
  let stopped: unknown = null;
  const tryAsk = async (rows: Float32Array[]): Promise<Float32Array[] | null> => {
    try {
      return await ask(rows);
    } catch (e) {
      if (!opts.stopOn?.(e)) throw e;
      stopped = e;
      return null;
    }
  };
  /** One answered row of an image: counted, and its loss (Infinity when refused). */
  const take = (st: ImageState, answer: Float32Array, label: number): number => {
    st.queries++;
    if (!isRefused(answer)) return loss(answer, label);
    st.refused++;
    st.firstRefused ??= st.queries;
    return Infinity;
  };
  const first = count > 0 ? await tryAsk(states.map((s) => s.best)) : null;
  first?.forEach((answer, i) => {
    states[i].margin = take(states[i], answer, labels[i]);
  });
  if (first) asked += count;

  let iteration = 0;
  for (; first && iteration < budget - 1; iteration++) {
    const active = states.flatMap((s, i) => (s.margin >= 0 ? [i] : []));
    if (active.length === 0) break;
    const side = squareSide(squareP(pInit, iteration, budget), h, w);
    const cands = active.map((i) => candidate(states[i], eps, side, shape));
    const answers = await tryAsk(cands);
    if (!answers) break;
    active.forEach((i, j) => {
      const st = states[i];
      const m = take(st, answers[j], labels[i]);
      if (m < st.margin) {
        st.margin = m;
        st.best = cands[j];
      }
    });
    asked += active.length;
    opts.onIteration?.(iteration + 1, active.length, states.filter((s) => s.margin >= 0).length);
  }

  const out = new Float32Array(count * pixels);
  states.forEach((s, i) => out.set(s.best, i * pixels));
  return {
    images: out,
    queries: Int32Array.from(states, (s) => s.queries),
    margins: Float64Array.from(states, (s) => s.margin),
    asked,
    refused: Int32Array.from(states, (s) => s.refused),
    firstRefused: states.map((s) => s.firstRefused),
    iterations: iteration,
    stopped,
  };
}
