/**
 * The run folder's memory of what the victim already answered, and the ledger of what was asked.
 *
 * answers.jsonl — the answer cache. One line per image the victim was paid to label:
 *   {"h":"<sha256 hex of the wire format tag + the image's exact bytes>","l":<label>,"p":"attack"|"measurement"}
 *   Appended synchronously after each batch answer and before the answer is returned, so a
 *   kill -9 at any point loses at most the batch in flight (which the victim may have charged).
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
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { TransferlabError } from '../shared/errors.js';
import type { QueryPurpose } from './oracle.js';

export const ANSWER_CACHE_FILE = 'answers.jsonl';
export const QUERY_LEDGER_FILE = 'queries.jsonl';

export interface CachedAnswer {
  h: string;
  l: number;
  p: QueryPurpose;
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
    (o.p === 'attack' || o.p === 'measurement')
  );
}

/**
 * The file's text up to its last newline. A kill -9 can only tear the last line; it is cut off
 * so the next append starts a clean line.
 */
function readWholeLines(path: string): string {
  const text = readFileSync(path, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  if (end < text.length) {
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, Buffer.byteLength(text.slice(0, end)));
    } finally {
      closeSync(fd);
    }
  }
  return text.slice(0, end);
}

/** Append-only file opened once; each append is one write(2), whole lines only. */
class AppendFile {
  private fd: number | null;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'a');
  }
  append(lines: string): void {
    if (this.fd === null) throw new TransferlabError('oracle_closed', `${this.path} is closed`, 500);
    // Loop: a write(2) may be short; the line must be whole on disk before the answer is used.
    const buf = Buffer.from(lines, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
  }
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export class AnswerCache {
  private readonly answers = new Map<string, number>();
  /** Images paid for in this run folder before this process opened it, by purpose. */
  readonly prior = { attack: 0, measurement: 0 };
  private readonly file: AppendFile | null;

  /** In memory only when `dir` is undefined; otherwise loads and then appends to dir/answers.jsonl. */
  constructor(dir?: string) {
    if (dir === undefined) {
      this.file = null;
      return;
    }
    mkdirSync(dir, { recursive: true });
    const path = join(dir, ANSWER_CACHE_FILE);
    if (existsSync(path)) this.load(path);
    this.file = new AppendFile(path);
  }

  private load(path: string): void {
    const text = readWholeLines(path);
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(lines[i]);
      } catch {
        v = undefined;
      }
      if (!isAnswer(v)) {
        throw new TransferlabError(
          'answer_cache_corrupt',
          `${path} line ${i + 1} is not a cached answer {h,l,p}; move the file away to start the cache afresh (its images will be paid again)`,
          500,
        );
      }
      if (this.answers.has(v.h)) continue;
      this.answers.set(v.h, v.l);
      this.prior[v.p]++;
    }
  }

  get size(): number {
    return this.answers.size;
  }

  get(hash: string): number | undefined {
    return this.answers.get(hash);
  }

  /** Record freshly paid answers; on disk before this returns. */
  add(entries: CachedAnswer[]): void {
    let lines = '';
    for (const e of entries) {
      if (this.answers.has(e.h)) continue;
      this.answers.set(e.h, e.l);
      lines += JSON.stringify(e) + '\n';
    }
    if (this.file && lines !== '') this.file.append(lines);
  }

  close(): void {
    this.file?.close();
  }
}

export class QueryLedger {
  private readonly file: AppendFile | null;
  constructor(dir?: string) {
    if (dir === undefined) {
      this.file = null;
      return;
    }
    mkdirSync(dir, { recursive: true });
    const path = join(dir, QUERY_LEDGER_FILE);
    if (existsSync(path)) readWholeLines(path);
    this.file = new AppendFile(path);
  }
  record(entry: LedgerEntry): void {
    this.file?.append(JSON.stringify(entry) + '\n');
  }
  close(): void {
    this.file?.close();
  }
}
