/**
 * The run folder's memory of what the victim already answered, and the ledger of what was asked.
 *
 * answers.jsonl — the answer cache. One line per image the victim was paid to label:
 *   {"h":"<sha256 hex of the wire format tag + the image's exact bytes>","l":<label>,"p":"attack"|"measurement"}
 *   and, only in a campaign whose threat model lets it use scores (topk, scores), "s":[<probability of
 *   each class, null for a class the answer did not give>]. A label-only campaign never writes "s".
 *   Appended (written and fsync'd, shared/jsonl-log.ts) after each batch answer and before the
 *   answer is returned, so a kill -9 or a power cut at any point loses at most the batch in flight
 *   (which the victim may have charged; its Idempotency-Key makes the resumed run's retry free).
 *   Each image appears once: the file is also the record of every image paid for in this run
 *   folder, split by the purpose of the query that paid for it.
 *
 * queries.jsonl — the query ledger. One line per HTTP batch (and one per call answered wholly
 * from the cache, with sent 0 and status "cached"):
 *   {"t":"<ISO time>","purpose":"attack"|"measurement","sent":<images in the batch>,
 *    "cached":<images of the call answered from the cache, on the call's first line>,
 *    "status":"ok"|"cached"|"<error code>","http":<status, when one came back>,"attempts":<n>,
 *    "ms":<duration>,"budget":{"used":<n>,"limit":<n|null>},"error":"<message, on failure>"}
 */
import { randomUUID } from 'node:crypto';
import { TransferlabError } from '../../shared/errors.js';
import type { QueryPurpose } from './oracle.js';
import type { RunLog, RunStore } from '../run/store.js';

export const ANSWER_CACHE_FILE = 'answers.jsonl';
export const QUERY_LEDGER_FILE = 'queries.jsonl';
export const RUN_ID_FILE = 'oracle-id';

/**
 * The run folder's identity, made once and kept across resumes (without a folder, one per process).
 * It scopes the Idempotency-Key the client sends: a retry or a resumed run re-sending a batch is the
 * same logical request and must not pay again, but another run that happens to send the same images
 * asks anew and pays for its answer, so each run's reported queries equal what the victim charged it.
 */
export function runIdentity(store?: RunStore): string {
  if (!store) return randomUUID();
  const id = new TextDecoder().decode(store.createOnce(RUN_ID_FILE, `${randomUUID()}\n`)).trim();
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new TransferlabError('run_corrupt', `${store.where(RUN_ID_FILE)} does not hold a run id; delete it to start a new one`);
  return id;
}

export interface CachedAnswer {
  h: string;
  l: number;
  p: QueryPurpose;
  /** Each class's probability (null: not given), kept only when the threat model allows scores. */
  s?: (number | null)[];
}

export interface LedgerEntry {
  t: string;
  purpose: QueryPurpose;
  sent: number;
  cached: number;
  status: string;
  http?: number;
  attempts?: number;
  ms: number;
  budget?: { used: number; limit: number | null };
  error?: string;
}

function isAnswer(v: unknown): v is CachedAnswer {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.h === 'string' &&
    /^[0-9a-f]{64}$/.test(o.h) &&
    Number.isInteger(o.l) &&
    (o.p === 'attack' || o.p === 'measurement') &&
    (o.s === undefined || (Array.isArray(o.s) && o.s.every((x) => x === null || typeof x === 'number')))
  );
}

export class AnswerCache {
  private readonly answers = new Map<string, CachedAnswer>();
  /** Images paid for in this run folder before this process opened it, by purpose. */
  readonly prior = { attack: 0, measurement: 0 };
  private readonly file: RunLog | null;

  /**
   * In memory only without a store; otherwise loads and then appends to the run's answers.jsonl.
   * A torn last line (a kill -9 mid-write) is dropped: that batch's answer was never used.
   */
  constructor(store?: RunStore) {
    if (store === undefined) {
      this.file = null;
      return;
    }
    const path = store.where(ANSWER_CACHE_FILE);
    const hint = 'move the file away to start the cache afresh (its images will be paid again)';
    const { log, records, lines } = store.openLog(ANSWER_CACHE_FILE, { torn: 'drop', corruptCode: 'answer_cache_corrupt', corruptHint: hint });
    records.forEach((v, i) => {
      if (!isAnswer(v)) {
        log.close();
        throw new TransferlabError('answer_cache_corrupt', `${path} line ${lines[i]} is not a cached answer {h,l,p}; ${hint}`, 500);
      }
      // A repeat is ignored, unless it brings the scores an earlier label-only answer lacked (paid again for them).
      const had = this.answers.get(v.h);
      if (had && (had.s || !v.s)) return;
      this.answers.set(v.h, v);
      this.prior[v.p]++;
    });
    this.file = log;
  }

  get size(): number {
    return this.answers.size;
  }

  get(hash: string): number | undefined {
    return this.answers.get(hash)?.l;
  }

  /** The cached answer with its scores, when it has them. */
  getScored(hash: string): CachedAnswer | undefined {
    const a = this.answers.get(hash);
    return a?.s ? a : undefined;
  }

  /** Record freshly paid answers: one write and one fsync for the batch, on disk when the promise resolves. */
  async addDurably(entries: CachedAnswer[]): Promise<void> {
    const fresh: CachedAnswer[] = [];
    for (const e of entries) {
      const had = this.answers.get(e.h);
      if (had && (had.s || !e.s)) continue;
      this.answers.set(e.h, e);
      fresh.push(e);
    }
    await this.file?.appendAll(fresh);
  }

  close(): void {
    this.file?.close();
  }
}

export class QueryLedger {
  private readonly file: RunLog | null;
  constructor(store?: RunStore) {
    if (store === undefined) {
      this.file = null;
      return;
    }
    this.file = store.openLog(QUERY_LEDGER_FILE, { torn: 'drop', corruptHint: 'move it aside (it only records queries; the answer cache keeps what was paid for)' }).log;
  }
  /** On disk (written and fsync'd) before this returns, like every line of this module's files. */
  record(entry: LedgerEntry): void {
    this.file?.appendNow([entry]);
  }
  /** The same, on disk when the promise resolves. */
  async recordDurably(entry: LedgerEntry): Promise<void> {
    await this.file?.appendAll([entry]);
  }
  close(): void {
    this.file?.close();
  }
}
