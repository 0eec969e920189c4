/**
 * The machinery every decision-based (label-only) attack shares: one search per image, written as a
 * generator that yields the probes it wants labelled and receives their labels, and a runner that
 * drives all the images' searches in lock-step — each round, the probes of every image still
 * searching go to the labeller as one batch (one HTTP request for the victim, split only by its
 * maxBatch). The attacks themselves do no I/O: they are pure functions of the labels they receive.
 *
 * Counting: an image's `queries` are the distinct probes it asked for. A probe repeated within the
 * image's recent probes is answered from that memory without being asked again (8-bit quantisation
 * makes fine bisections repeat images); repeats across images or across a resumed run reach the
 * labeller, whose answer cache serves them without paying. Every probe is clipped to [0, 1] and
 * rounded to 8 bits first, so the image recorded as the best adversarial example is exactly the one
 * the victim labelled, and its distances are the ones reported.
 */
import { createHash } from 'node:crypto';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import type { ProbeShaper } from './evasion.js';

/** The oracle's label for a probe the victim's detector refused (adversary/oracle/core.ts REJECTED). */
const REFUSED = -1;

export type Norm = 'linf' | 'l2';

/** One improvement of an image's best adversarial example: [queries so far, L∞, L2, its label]. */
export type TracePoint = [number, number, number, number];

/** What a search may know and do besides asking for labels. */
export interface SearchContext {
  /** The image under attack (8-bit values in [0, 1]). */
  readonly x: Float32Array;
  /** True when a label is what the attack wants: ≠ the original label, or = the target. */
  adversarial(label: number): boolean;
  /** Probes this image may still ask for. */
  remaining(): number;
  /** Record an adversarial probe (already quantised) with its label; kept when it beats the best so far. */
  offer(image: Float32Array, label: number): void;
  /** The best distance so far in the attack's norm (Infinity before any adversarial example). */
  best(): number;
}

/** A search yields k×pixels probes (quantised) and is resumed with their k labels. */
export type ImageSearch = Generator<Float32Array, void, Int32Array>;

export interface ImageOutcome {
  /** Best adversarial example found (quantised), or null. */
  image: Float32Array | null;
  label: number | null;
  linf: number | null;
  l2: number | null;
  queries: number;
  /** Every improvement, in order; one run gives the distance at any smaller budget. */
  trace: TracePoint[];
  /** Why the search ended: it finished, hit its per-image budget, the key's budget ran out, or the victim blocked the key(s). */
  end: 'finished' | 'image_budget' | 'key_budget' | 'key_blocked';
  /** Probes (resamples included) the victim refused as attack queries (403 query_rejected). */
  flagged: number;
  /** The image's query count at its first refused probe (null: none refused). */
  firstFlagged: number | null;
}

export interface LockStepOptions {
  norm: Norm;
  queriesPerImage: number;
  /** Called after every round with the probes asked in it (for progress). */
  onRound?: (round: number, asked: number, active: number) => void;
  /** Blinding and adaptive resampling against a stateful detector (evasion.ts). */
  shaper?: ProbeShaper;
  /**
   * A victim blocking the key (403 extraction_suspected; with Sybil keys, the last live one) ends every
   * search with what it had found, as the attack's outcome against that defence; without it the refusal is thrown.
   */
  endWhenBlocked?: boolean;
}

export interface LockStepResult {
  outcomes: ImageOutcome[];
  /**
   * 'budget_exhausted' when the key's budget refused a round: the outcomes are partial; 'key_blocked'
   * when the victim blocked the key (endWhenBlocked): the outcomes are what the attack got before.
   */
  stopped: 'budget_exhausted' | 'key_blocked' | null;
  rounds: number;
  /** Probes sent to the labeller (each image's distinct probes, summed; resamples included). */
  asked: number;
  /** Probes the victim refused, resamples included. */
  flagged: number;
  /** Resamples sent for refused probes (adaptive). */
  resamples: number;
}

/** Recent probes an image remembers (a bisection's repeats fall well inside it); bounds memory per image. */
const MEMO_SIZE = 256;

/** Round to 8 bits inside [0, 1], in place; returns the array. */
export function quantiseInPlace(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) {
    const v = a[i] < 0 ? 0 : a[i] > 1 ? 1 : a[i];
    a[i] = Math.round(v * 255) / 255;
  }
  return a;
}

export function distances(x: Float32Array, y: Float32Array, offset = 0): { linf: number; l2: number } {
  let linf = 0;
  let sq = 0;
  for (let p = 0; p < x.length; p++) {
    const d = Math.abs(y[offset + p] - x[p]);
    if (d > linf) linf = d;
    sq += d * d;
  }
  return { linf, l2: Math.sqrt(sq) };
}

function probeKey(probes: Float32Array, offset: number, pixels: number): string {
  const bytes = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) bytes[p] = Math.round(probes[offset + p] * 255);
  return createHash('sha1').update(bytes).digest('base64');
}

class ImageRun implements SearchContext {
  queries = 0;
  trace: TracePoint[] = [];
  image: Float32Array | null = null;
  label: number | null = null;
  linf = Infinity;
  l2 = Infinity;
  end: ImageOutcome['end'] = 'finished';
  flagged = 0;
  firstFlagged: number | null = null;
  done = false;
  /** Rounds this image took part in, memory hits included: bounds a search that only repeats itself. */
  yields = 0;
  readonly memo = new Map<string, number>();
  pending: Float32Array | null = null;

  constructor(
    readonly x: Float32Array,
    private readonly wants: (label: number) => boolean,
    private readonly norm: Norm,
    private readonly budget: number,
  ) {}

  adversarial(label: number): boolean {
    return this.wants(label);
  }
  remaining(): number {
    return this.budget - this.queries;
  }
  best(): number {
    return this.norm === 'linf' ? this.linf : this.l2;
  }
  offer(image: Float32Array, label: number): void {
    if (!this.wants(label)) return;
    const d = distances(this.x, image);
    const score = this.norm === 'linf' ? d.linf : d.l2;
    // Ties in the attack's norm go to the smaller other norm: same success, a less visible change.
    const other = this.norm === 'linf' ? d.l2 : d.linf;
    const bestOther = this.norm === 'linf' ? this.l2 : this.linf;
    if (score > this.best() || (score === this.best() && other >= bestOther)) return;
    this.image = image.slice();
    this.label = label;
    this.linf = d.linf;
    this.l2 = d.l2;
    this.trace.push([this.queries, d.linf, d.l2, label]);
  }
  remember(key: string, label: number): void {
    this.memo.set(key, label);
    if (this.memo.size > MEMO_SIZE) this.memo.delete(this.memo.keys().next().value as string);
  }
  outcome(): ImageOutcome {
    const found = this.image !== null;
    return {
      image: this.image,
      label: this.label,
      linf: found ? this.linf : null,
      l2: found ? this.l2 : null,
      queries: this.queries,
      trace: this.trace,
      end: this.end,
      flagged: this.flagged,
      firstFlagged: this.firstFlagged,
    };
  }
}

export interface SearchSpec {
  x: Float32Array;
  adversarial: (label: number) => boolean;
  /** What a refused probe reads as: a label that is not adversarial (the clean one). */
  clean: number;
  start: (ctx: SearchContext) => ImageSearch;
}

/** Why a refusal ends every search, or null when it is thrown. */
function stopFor(e: unknown, endWhenBlocked: boolean): { stopped: NonNullable<LockStepResult['stopped']>; end: ImageOutcome['end'] } | null {
  if (!(e instanceof TransferlabError)) return null;
  if (e.code === 'budget_exhausted') return { stopped: 'budget_exhausted', end: 'key_budget' };
  if (endWhenBlocked && e.code === 'extraction_suspected') return { stopped: 'key_blocked', end: 'key_blocked' };
  return null;
}

/**
 * Drive every image's search until each finishes or spends `queriesPerImage`; one labeller call
 * per round. A refusal for the key's budget (or, with endWhenBlocked, a blocked key) ends all
 * searches cleanly with what they found so far.
 */
export async function runLockStep(specs: SearchSpec[], label: Labeler, opts: LockStepOptions): Promise<LockStepResult> {
  if (!Number.isInteger(opts.queriesPerImage) || opts.queriesPerImage < 1) {
    throw new TransferlabError('bad_attack_input', `queries per image must be an integer ≥ 1, got ${opts.queriesPerImage}`);
  }
  const pixels = specs[0]?.x.length ?? 0;
  const runs = specs.map((s) => new ImageRun(s.x, s.adversarial, opts.norm, opts.queriesPerImage));
  const searches = specs.map((s, i) => s.start(runs[i]));
  const advance = (i: number, labels?: Int32Array) => {
    const step = labels === undefined ? searches[i].next() : searches[i].next(labels);
    if (step.done) runs[i].done = true;
    else runs[i].pending = step.value;
  };
  runs.forEach((_, i) => advance(i));
  let rounds = 0;
  let asked = 0;
  let flagged = 0;
  let resamples = 0;
  let stopped: LockStepResult['stopped'] = null;
  const shaper = opts.shaper;

  for (;;) {
    // Each image's probes: answered from its memory, or new (to ask, once per distinct probe).
    const plan: { i: number; labels: Int32Array; ask: number[]; keys: string[] }[] = [];
    const batchRows: { i: number; offset: number }[] = [];
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i];
      if (r.done || r.pending === null) continue;
      const probes = r.pending;
      if (probes.length === 0 || probes.length % pixels !== 0) {
        throw new TransferlabError('bad_attack_input', `a search yielded ${probes.length} values, not a whole number of ${pixels}-pixel images`, 500);
      }
      const k = probes.length / pixels;
      const labels = new Int32Array(k);
      const ask: number[] = [];
      const keys: string[] = [];
      const fresh = new Map<string, number>();
      for (let j = 0; j < k; j++) {
        const key = probeKey(probes, j * pixels, pixels);
        const known = r.memo.get(key);
        if (known !== undefined) labels[j] = known;
        else if (fresh.has(key)) labels[j] = -1 - (fresh.get(key) as number); // filled from its twin below
        else {
          fresh.set(key, ask.length);
          ask.push(j);
          keys.push(key);
        }
      }
      r.yields++;
      if (ask.length > r.remaining() || r.yields > 4 * opts.queriesPerImage + 1000) {
        r.done = true;
        r.end = 'image_budget';
        searches[i].return();
        continue;
      }
      plan.push({ i, labels, ask, keys });
      for (const j of ask) batchRows.push({ i, offset: j * pixels });
    }
    if (plan.length === 0) break;

    let answers: Int32Array = new Int32Array(0);
    if (batchRows.length > 0) {
      const batch = new Float32Array(batchRows.length * pixels);
      const probeOf = (b: number) => runs[batchRows[b].i].pending!.subarray(batchRows[b].offset, batchRows[b].offset + pixels);
      batchRows.forEach(({ i }, b) => batch.set(shaper ? shaper.blind(probeOf(b), runs[i].x) : probeOf(b), b * pixels));
      try {
        answers = await label(batch, batchRows.length);
        checkCount(answers, batchRows.length);
        // Adaptive: each refused probe drawn again with the learned noise, while its image has budget.
        let refused = batchRows.flatMap((row, b) => (answers[b] === REFUSED ? [b] : []));
        for (const b of refused) {
          const r = runs[batchRows[b].i];
          r.flagged++;
          r.firstFlagged ??= r.queries + 1;
        }
        flagged += refused.length;
        for (let round = 0; shaper?.s.adaptive && round < shaper.maxResamples && refused.length > 0; round++) {
          refused = refused.filter((b) => runs[batchRows[b].i].remaining() > 0);
          if (refused.length === 0) break;
          const again = new Float32Array(refused.length * pixels);
          refused.forEach((b, k) => again.set(shaper.resample(shaper.blind(probeOf(b), runs[batchRows[b].i].x)), k * pixels));
          const got = await label(again, refused.length);
          checkCount(got, refused.length);
          resamples += refused.length;
          refused = refused.filter((b, k) => {
            const r = runs[batchRows[b].i];
            r.queries++;
            shaper.learn(got[k] === REFUSED);
            if (got[k] !== REFUSED) {
              answers[b] = got[k];
              return false;
            }
            r.flagged++;
            flagged++;
            return true;
          });
        }
      } catch (e) {
        const stop = stopFor(e, opts.endWhenBlocked ?? false);
        if (!stop) throw e;
        stopped = stop.stopped;
        for (const r of runs) if (!r.done) r.end = stop.end;
        break;
      }
      // A probe still refused reads as not adversarial: the attack learns nothing from it.
      batchRows.forEach(({ i }, b) => {
        if (answers[b] === REFUSED) answers[b] = specs[i].clean;
      });
    }
    rounds++;
    asked += batchRows.length;
    let b = 0;
    for (const p of plan) {
      const r = runs[p.i];
      p.ask.forEach((j, a) => {
        p.labels[j] = answers[b++];
        r.remember(p.keys[a], p.labels[j]);
      });
      for (let j = 0; j < p.labels.length; j++) if (p.labels[j] < 0) p.labels[j] = p.labels[p.ask[-1 - p.labels[j]]];
      r.queries += p.ask.length;
      r.pending = null;
      advance(p.i, p.labels);
    }
    opts.onRound?.(rounds, batchRows.length, runs.filter((r) => !r.done).length);
  }
  return { outcomes: runs.map((r) => r.outcome()), stopped, rounds, asked: asked + resamples, flagged, resamples };
}

function checkCount(answers: Int32Array, asked: number): void {
  if (answers.length !== asked) throw new TransferlabError('victim_bad_response', `labeller returned ${answers.length} labels for ${asked} probes`, 502);
}
