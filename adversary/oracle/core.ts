/**
 * What every label oracle does whatever carries the query: quantise images to the bytes a real
 * client would send, answer repeats from the run's cache, split the rest into batches, count
 * what was paid by purpose, and write the cache and ledger as answers arrive. The HTTP client
 * and the in-process adapter (local-oracle.ts) differ only in their `send`; the bytes sent and their
 * cache key are image-bytes.ts's.
 */
import { TransferlabError } from '../../shared/errors.js';
import { AnswerCache, QueryLedger, type CachedAnswer } from './answer-cache.js';
import type { BudgetStatus, PixelFormat } from '../../shared/protocol/index.js';
import { bytesPerImage, encodeImages, imageKey, pixelsPerImage } from './image-bytes.js';
import type { LabelOracle, QueryCounts, QueryPurpose, VictimInfo } from './oracle.js';
import { fileRunStore, type RunStore } from '../run/store.js';
import { clientBudgetError, eachLimited, RequestPacer, type OracleLimits } from './limits.js';

export type { PixelFormat };
export type Budget = BudgetStatus;

export interface BatchAnswer {
  labels: readonly number[] | Int32Array;
  /**
   * count × classes probabilities, when the endpoint gave any and the threat model lets the campaign
   * use them; NaN for a class the answer did not name (top-k). Absent in a label-only campaign.
   */
  scores?: Float32Array;
  /**
   * Why an answer with good labels carries no scores (a label-only server seen in its answers, less than
   * the target declared): in a run that needs scores, the labels are kept and counted, then the run stops.
   */
  noScores?: string;
  http?: number;
  attempts?: number;
  budget?: Budget;
  /** Which of the oracle's keys carried the batch (Sybil; 0 with one key). */
  key?: number;
}

/** The label of an image the victim's detector refused (403 query_rejected): no class, nothing paid. */
export const REJECTED = -1;

/** Batches the victim refused as holding attack queries (action `reject`), and the images in them. */
export interface Rejections {
  /** Images the detector flagged (X-Rejected-Images). */
  flagged: number;
  /** Images in refused batches (the flagged ones and the batch-mates refused with them). */
  refused: number;
  /** Refused requests. */
  requests: number;
}

/** Carries one batch of wire-encoded images (count × bytesPerImage) and returns its labels. */
export type SendBatch = (body: Uint8Array, count: number, purpose: QueryPurpose) => Promise<BatchAnswer>;

/** A LabelOracle that also tells what earlier processes paid in the same run folder. */
export interface CountingOracle extends LabelOracle {
  readonly format: PixelFormat;
  /** Images paid for in this run folder (cacheDir) before this oracle opened it, by purpose. */
  priorCounts(): { attack: number; measurement: number };
  /** The victim's own count for this key, as last reported with an answer (null until then). */
  victimBudget(): Budget | null;
  /** The key's budget as the victim tells it now, charging nothing (null: the victim does not say). */
  budget(): Promise<Budget | null>;
  /**
   * count × classes probabilities, NaN for a class the answer did not give; cached and counted like
   * label(). Present only when the campaign's threat model allows scores (topk, scores).
   */
  scores?(images: Float32Array, count: number, purpose: QueryPurpose): Promise<Float32Array>;
  /** What the victim's detector refused (with rejectAsAnswer). */
  rejections(): Rejections;
  /** Images paid, by key (Sybil: one entry per key, in the keys' order). */
  paidByKey(): number[];
}

/**
 * What the run folder has paid over its whole life, by purpose: this process's queries plus every
 * earlier session's (a resumed run reports what it cost in all); `cached` is this process's.
 */
export function paidCounts(oracle: CountingOracle): QueryCounts {
  const now = oracle.counts();
  const before = oracle.priorCounts();
  return { attack: now.attack + before.attack, measurement: now.measurement + before.measurement, cached: now.cached };
}

/** A batch the victim refused or never answered: the ledger records its HTTP status and attempts. */
export class VictimError extends TransferlabError {
  constructor(
    code: string,
    message: string,
    status: number,
    readonly http: number | undefined,
    readonly attempts: number,
    /** 403 query_rejected: the indices of the batch's images the detector flagged. */
    readonly rejected?: number[],
  ) {
    super(code, message, status);
  }
}

function checkLabels(labels: BatchAnswer['labels'], expected: number, classes: number): void {
  if (labels.length !== expected) {
    throw new TransferlabError('victim_bad_response', `victim answered ${labels.length} labels for ${expected} images`, 502);
  }
  for (const l of labels) {
    if (!Number.isInteger(l) || l < 0 || l >= classes) {
      throw new TransferlabError('victim_bad_response', `victim answered label ${l}, outside 0..${classes - 1}`, 502);
    }
  }
}

function checkScores(scores: Float32Array | undefined, expected: number, classes: number): void {
  if (!scores || scores.length !== expected * classes) {
    throw new TransferlabError('victim_bad_response', `the answer carried ${scores ? `${scores.length} scores` : 'no scores'} for ${expected} images × ${classes} classes, which the threat model needs`, 502);
  }
}

export interface OracleCoreOptions {
  info: VictimInfo;
  format: PixelFormat;
  send: SendBatch;
  /**
   * Keep each answer's scores (a topk or scores threat model): every answer must carry them, they are
   * cached with the label, and the oracle gains scores(). Off (label threat): scores are never read.
   */
  scores?: boolean;
  /** The run whose answer cache and ledger the oracle keeps (none: in memory only). */
  store?: RunStore;
  /** Asks the victim for the key's budget without paying (absent: unknown). */
  readBudget?: () => Promise<Budget | null>;
  onClose?: () => Promise<void> | void;
  /** The client's own budget of paid images and its pace (limits.ts); absent: no budget, one request at a time. */
  limits?: OracleLimits;
  /** Most images per request (default and ceiling: info.maxBatch). */
  requestSize?: number;
  /**
   * A batch refused with 403 query_rejected is answered: its images get REJECTED (not cached, not
   * paid), and the run goes on. Without it the refusal stops the run like any other.
   */
  rejectAsAnswer?: boolean;
  /** Keys the send function spreads batches over (Sybil), for paidByKey (default 1). */
  keys?: number;
}

/** The store of a run given as a folder (cacheDir) or as a store; undefined for neither. */
export const oracleStore = (o: { cacheDir?: string; store?: RunStore }): RunStore | undefined => o.store ?? (o.cacheDir ? fileRunStore(o.cacheDir) : undefined);

export function buildOracle(opts: OracleCoreOptions): CountingOracle {
  const { info, format, send } = opts;
  const pixels = pixelsPerImage(info);
  const stride = bytesPerImage(info, format);
  const cache = new AnswerCache(opts.store);
  const ledger = new QueryLedger(opts.store);
  const counts: QueryCounts = { attack: 0, measurement: 0, cached: 0 };
  let budget: Budget | null = null;
  let closed = false;
  const clientBudget = opts.limits?.budget;
  const concurrency = opts.limits?.concurrency ?? 1;
  const pacer = new RequestPacer(concurrency, opts.limits?.rps);
  /** Images this run folder has paid for, earlier sessions included. */
  const paidSoFar = () => cache.prior.attack + cache.prior.measurement + counts.attack + counts.measurement;
  const rejections: Rejections = { flagged: 0, refused: 0, requests: 0 };
  const byKey = new Array<number>(opts.keys ?? 1).fill(0);
  const perRequest = Math.max(1, Math.min(info.maxBatch, opts.requestSize ?? info.maxBatch));
  // Calls run one at a time, so two overlapping calls asking for the same new image cannot both pay for it.
  let queue: Promise<unknown> = Promise.resolve();

  // With scores kept, a cached answer without them (a label-only run's) does not answer: it is paid again.
  const known = (key: string): CachedAnswer | number | undefined => (opts.scores ? cache.getScored(key) : cache.get(key));

  async function answerNow(bytes: Uint8Array, count: number, purpose: QueryPurpose): Promise<{ labels: Int32Array; scores?: Float32Array }> {
    const classes = info.classes;
    const out = new Int32Array(count);
    const scores = opts.scores ? new Float32Array(count * classes) : undefined;
    const fill = (i: number, l: number, s: ArrayLike<number | null> | undefined) => {
      out[i] = l;
      if (scores && s) for (let c = 0; c < classes; c++) scores[i * classes + c] = s[c] ?? NaN;
    };
    // Images still to pay for: first index of each distinct unseen image, and who else shares it.
    const missing = new Map<string, number[]>();
    let hits = 0;
    for (let i = 0; i < count; i++) {
      const key = imageKey(bytes.subarray(i * stride, (i + 1) * stride), format);
      const k = known(key);
      if (k !== undefined) {
        if (typeof k === 'number') fill(i, k, undefined);
        else fill(i, k.l, k.s);
        hits++;
        continue;
      }
      const same = missing.get(key);
      if (same) {
        same.push(i);
        hits++; // answered by its twin in this call, not paid again
      } else missing.set(key, [i]);
    }
    counts.cached += hits;
    const todo = [...missing.entries()];
    if (todo.length === 0) {
      if (count > 0) ledger.record({ t: new Date().toISOString(), purpose, sent: 0, cached: hits, status: 'cached', ms: 0 });
      return { labels: out, scores };
    }
    // The whole call is refused before its first batch: a run never pays for part of what it cannot finish.
    if (clientBudget !== undefined && paidSoFar() + todo.length > clientBudget) {
      const err = clientBudgetError(todo.length, paidSoFar(), clientBudget);
      ledger.record({ t: new Date().toISOString(), purpose, sent: 0, cached: hits, status: err.code, ms: 0, error: err.message });
      throw err;
    }
    const starts: number[] = [];
    for (let start = 0; start < todo.length; start += perRequest) starts.push(start);
    await eachLimited(starts, concurrency, async (start) => {
      const part = todo.slice(start, start + perRequest);
      const body = new Uint8Array(part.length * stride);
      part.forEach(([, idx], j) => body.set(bytes.subarray(idx[0] * stride, (idx[0] + 1) * stride), j * stride));
      const cachedHere = start === 0 ? hits : 0;
      const t0 = performance.now();
      let answer: BatchAnswer;
      try {
        answer = await pacer.run(() => send(body, part.length, purpose));
        checkLabels(answer.labels, part.length, classes);
        if (opts.scores && answer.scores) checkScores(answer.scores, part.length, classes);
      } catch (e) {
        const err = e instanceof TransferlabError ? e : new TransferlabError('oracle_failed', String(e), 500);
        const rejected = opts.rejectAsAnswer && err.code === 'query_rejected';
        ledger.record({
          t: new Date().toISOString(), purpose, sent: part.length, cached: cachedHere, status: err.code,
          http: err instanceof VictimError ? err.http : undefined,
          attempts: err instanceof VictimError ? err.attempts : undefined,
          ms: Math.round(performance.now() - t0), error: err.message,
        });
        if (!rejected) throw err;
        // Seen by the attack as a refusal, never cached: the same image sent again is judged again.
        // No scores either: NaN in every class, as for a class an answer did not give.
        const none = new Array<null>(classes).fill(null);
        for (const [, idx] of part) for (const i of idx) fill(i, REJECTED, none);
        rejections.requests++;
        rejections.refused += part.length;
        rejections.flagged += err instanceof VictimError && err.rejected?.length ? err.rejected.length : part.length;
        return;
      }
      const fresh: CachedAnswer[] = [];
      part.forEach(([key, idx], j) => {
        const l = answer.labels[j];
        // Scores reach the cache only when the threat model keeps them (opts.scores); NaN (not given) is null in JSON.
        const s = opts.scores && answer.scores ? Array.from(answer.scores.subarray(j * classes, (j + 1) * classes), (v) => (Number.isNaN(v) ? null : v)) : undefined;
        for (const i of idx) fill(i, l, s);
        fresh.push(s ? { h: key, l, p: purpose, s } : { h: key, l, p: purpose });
      });
      // Paid and answered: on disk before anything else can fail, so a resumed run never pays again. The
      // answers and the batch's ledger line are synced side by side, and the thread is free meanwhile.
      await Promise.all([
        cache.addDurably(fresh),
        ledger.recordDurably({
          t: new Date().toISOString(), purpose, sent: part.length, cached: cachedHere, status: 'ok',
          http: answer.http, attempts: answer.attempts, ms: Math.round(performance.now() - t0), budget: answer.budget,
        }),
      ]);
      counts[purpose] += part.length;
      byKey[answer.key ?? 0] += part.length;
      if (answer.budget) budget = answer.budget;
      // Labels without the scores the threat model needs: paid and kept above, and the run stops here.
      if (opts.scores && !answer.scores) {
        const why = answer.noScores ?? 'the answer carried labels only';
        throw new TransferlabError('threat_unavailable', `${why}, and the campaign's threat model needs scores; the ${part.length} image(s) of that answer were paid, counted and their labels kept in the answer cache (rerun with threat label to use them)`, 502);
      }
    });
    return { labels: out, scores };
  }

  /** Runs one call after the ones before it; the images are encoded now, as the caller may reuse its buffer. */
  const enqueue = (images: Float32Array, count: number, purpose: QueryPurpose, what: string) => {
    if (closed) throw new TransferlabError('oracle_closed', `${what}() after close()`, 500);
    if (purpose !== 'attack' && purpose !== 'measurement') {
      throw new TransferlabError('bad_oracle_input', `query purpose must be attack or measurement, got ${String(purpose)}`);
    }
    const bytes = encodeImages(images, count, pixels, format);
    const run = queue.then(() => answerNow(bytes, count, purpose));
    queue = run.catch(() => undefined);
    return run;
  };

  const label = async (images: Float32Array, count: number, purpose: QueryPurpose): Promise<Int32Array> => (await enqueue(images, count, purpose, 'label')).labels;
  const scores = opts.scores
    ? async (images: Float32Array, count: number, purpose: QueryPurpose): Promise<Float32Array> => (await enqueue(images, count, purpose, 'scores')).scores as Float32Array
    : undefined;

  return {
    format,
    info: async () => info,
    label,
    ...(scores ? { scores } : {}),
    counts: () => ({ ...counts }),
    priorCounts: () => ({ ...cache.prior }),
    victimBudget: () => (budget ? { ...budget } : null),
    budget: async () => tighter(opts.readBudget ? await opts.readBudget() : null, clientBudget === undefined ? null : { used: paidSoFar(), limit: clientBudget }),
    rejections: () => ({ ...rejections }),
    paidByKey: () => [...byKey],
    async close() {
      if (closed) return;
      closed = true;
      await queue; // let a call in flight write its answers before the files close
      cache.close();
      ledger.close();
      await opts.onClose?.();
    },
  };
}

/** Of the victim's budget and the client's own, the one with less left (null: neither is known). */
function tighter(victim: Budget | null, client: Budget | null): Budget | null {
  const left = (b: Budget) => (b.limit === null ? Infinity : b.limit - b.used);
  if (!victim || victim.limit === null) return client ?? victim;
  return client && left(client) < left(victim) ? client : victim;
}
