import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { TransferlabError } from '../../shared/errors.js';
import { JsonlLog, syncDir } from '../../shared/jsonl-log.js';
import {
  IDEMPOTENCY_CAPACITY,
  IDEMPOTENCY_TTL_MS,
  MemoryIdempotencyStore,
  type IdempotencyClaim,
  type IdempotencyStore,
  type IdempotencyTicket,
} from './idempotency.js';

/**
 * Idempotency records that survive a restart or a crash: one JSON line per charged request with a
 * key, `{"t","exp","id","k","sha","labels"}` (charge time, expiry in epoch ms, caller, key, payload
 * sha256, labels), appended and fsync'd before the answer leaves — so a client that resumes across a
 * victim restart is never charged twice for a batch it was answered. In-flight waits and the LRU are
 * the memory store's; this adds the file. At open, expired records are left out and the file is
 * rewritten (atomically) without them, so it holds at most one TTL's worth of records per start.
 */
export interface IdempotencyRecord {
  t: string;
  exp: number;
  id: string;
  k: string;
  sha: string;
  labels: number[];
}

function isRecord(v: unknown): v is IdempotencyRecord {
  const r = v as Partial<IdempotencyRecord> | null;
  return (
    !!r &&
    typeof r === 'object' &&
    typeof r.t === 'string' &&
    typeof r.exp === 'number' &&
    typeof r.id === 'string' &&
    typeof r.k === 'string' &&
    typeof r.sha === 'string' &&
    Array.isArray(r.labels) &&
    r.labels.every((l) => Number.isInteger(l))
  );
}

export interface FileStoreOptions {
  ttlMs?: number;
  capacity?: number;
  clock?: () => Date;
}

export class FileIdempotencyStore implements IdempotencyStore {
  private constructor(
    private readonly memory: MemoryIdempotencyStore,
    private log: JsonlLog,
    private readonly clock: () => Date,
  ) {}

  /**
   * Open (or create) the file and restore its live records. Call it while holding the ledger's lock:
   * the records are only true for the budgets in that ledger.
   */
  static open(path: string, opts: FileStoreOptions = {}): { store: FileIdempotencyStore; restored: number; expired: number } {
    const clock = opts.clock ?? (() => new Date());
    const capacity = opts.capacity ?? IDEMPOTENCY_CAPACITY;
    const hint = 'move it aside to start afresh (repeats of requests answered before then will be charged again)';
    const opened = JsonlLog.open(path, { torn: 'drop', corruptCode: 'idempotency_log_corrupt', corruptHint: hint });
    const now = clock().getTime();
    const live: IdempotencyRecord[] = [];
    opened.records.forEach((r, i) => {
      if (!isRecord(r)) throw new TransferlabError('idempotency_log_corrupt', `${path} line ${opened.lines[i]} is not an idempotency record {t,exp,id,k,sha,labels}; ${hint}`, 500);
      if (r.exp > now) live.push(r);
    });
    const kept = live.slice(-capacity);
    let log = opened.log;
    if (kept.length < opened.records.length) {
      log.close();
      rewrite(path, kept);
      log = JsonlLog.open(path, { torn: 'drop' }).log;
    }
    const memory = new MemoryIdempotencyStore({ capacity, ttlMs: opts.ttlMs ?? IDEMPOTENCY_TTL_MS, clock });
    for (const r of kept) memory.restore(r.id, r.k, r.sha, Int32Array.from(r.labels), r.exp);
    return { store: new FileIdempotencyStore(memory, log, clock), restored: kept.length, expired: opened.records.length - live.length };
  }

  get path(): string {
    return this.log.path;
  }

  get size(): number {
    return this.memory.size;
  }

  replayOrClaim(keyId: string, key: string, payloadSha256: string): Promise<IdempotencyClaim> {
    return this.memory.replayOrClaim(keyId, key, payloadSha256);
  }

  finish(t: IdempotencyTicket, labels: Int32Array): Promise<void> {
    const exp = this.memory.settle(t, labels);
    const record: IdempotencyRecord = { t: this.clock().toISOString(), exp, id: t.keyId, k: t.key, sha: t.payloadSha256, labels: Array.from(labels) };
    return this.log.append(record);
  }

  abandon(t: IdempotencyTicket): Promise<void> {
    return this.memory.abandon(t);
  }

  close(): Promise<void> {
    this.log.close();
    return Promise.resolve();
  }
}

/** Replace the file by one holding only `records`: temp file, fsync, rename, fsync the folder. */
function rewrite(path: string, records: IdempotencyRecord[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      const buf = Buffer.from(records.map((r) => JSON.stringify(r) + '\n').join(''), 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    syncDir(dirname(path));
  } catch (e) {
    throw new TransferlabError('log_unwritable', `cannot rewrite ${path} without its expired records: ${(e as Error).message}`, 500);
  }
}
