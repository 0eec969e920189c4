import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { TransferlabError } from './errors.js';

/**
 * Append-only JSON-lines files: the victim's ledger, audit log and idempotency records, the
 * adversary's answer cache and query ledger.
 *
 * One durability rule for all of them: a record is written AND fsync'd before anyone is told it is
 * written — before `append`'s promise resolves, before `appendNow` returns. So whatever a process
 * acted on (an answer sent, a label used) is on disk after a kill -9 or a power cut.
 *
 * Group commit: records passed to `append` during one turn of the event loop (the victim's
 * micro-batcher resolves a whole batch of requests at once) share a single write + fsync, so
 * durability costs one fsync per turn rather than one per record. That fsync runs off the main
 * thread: the event loop goes on meanwhile, and the fsyncs of several logs committed in the same
 * turn (a charge and its idempotency record; an answer and its ledger line) wait on the disk
 * together rather than one after the other. `appendNow` is for synchronous callers: it writes and
 * fsyncs what it is given, together with anything `append` left pending.
 *
 * A crash can only tear the last line (a write whose fsync never returned, so nobody acted on it).
 * At open, a torn tail is either dropped (`torn: 'drop'`) or replaced by a record the caller builds
 * from the fragment (`torn: fn`), so the fragment stays as evidence yet every later open reads a
 * file of whole, valid lines — the same way on every start. A bad line anywhere else is not a torn
 * write: opening refuses rather than silently miscount.
 */
export type TornTailRule = 'drop' | ((fragment: Buffer) => object);

export interface JsonlOpenOptions {
  torn: TornTailRule;
  /** What the refusal of a corrupt line tells the operator to do. */
  corruptHint?: string;
  /** The error code of that refusal (default log_corrupt). */
  corruptCode?: string;
}

export interface OpenedJsonl {
  log: JsonlLog;
  /** Records already in the file, oldest first (a torn tail's replacement record not included). */
  records: unknown[];
  /** The 1-based line of each record, for callers that check records and must name a bad one. */
  lines: number[];
  /** The torn (partial) last line a crash left, if there was one. */
  tornTail?: Buffer;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

export class JsonlLog {
  private fd: number | undefined;
  private pending: string[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** Group commits whose fsync has not returned yet; the file is closed only after the last. */
  private syncing = 0;
  private closeWhenSynced: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Read every whole line, repair a torn tail as `opts.torn` says, and open for appending. */
  static open(path: string, opts: JsonlOpenOptions): OpenedJsonl {
    let bytes: Buffer = Buffer.alloc(0);
    try {
      mkdirSync(dirname(path), { recursive: true });
      if (existsSync(path)) bytes = readFileSync(path);
    } catch (e) {
      throw new TransferlabError('log_unreadable', `cannot read ${path}: ${(e as Error).message}`, 500);
    }
    const end = bytes.lastIndexOf(0x0a) + 1;
    const tail = bytes.subarray(end);
    const records: unknown[] = [];
    const lines: number[] = [];
    bytes
      .subarray(0, end)
      .toString('utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        try {
          records.push(JSON.parse(line));
          lines.push(i + 1);
        } catch {
          throw new TransferlabError(
            opts.corruptCode ?? 'log_corrupt',
            `${path} line ${i + 1} is not valid JSON; ${opts.corruptHint ?? 'restore the file from a backup or move it aside'}`,
            500,
          );
        }
      });
    let fd: number;
    try {
      fd = openSync(path, 'a');
      if (tail.length > 0) {
        ftruncateSync(fd, end);
        if (opts.torn !== 'drop') writeAll(fd, JSON.stringify(opts.torn(Buffer.from(tail))) + '\n');
        fsyncSync(fd);
      }
      // Make the file's directory entry durable too, so a fresh log survives a crash.
      syncDir(dirname(path));
    } catch (e) {
      throw new TransferlabError('log_unwritable', `cannot open ${path} for appending: ${(e as Error).message}`, 500);
    }
    return { log: new JsonlLog(path, fd), records, lines, tornTail: tail.length > 0 ? Buffer.from(tail) : undefined };
  }

  /** Append a record; resolves once it is on disk (group commit with the turn's other appends). */
  append(record: object): Promise<void> {
    return this.appendAll([record]);
  }

  /** Append records; resolves once they are on disk (one group commit with the turn's other appends). */
  appendAll(records: readonly object[]): Promise<void> {
    if (this.fd === undefined) return Promise.reject(closedError(this.path));
    for (const r of records) this.pending.push(JSON.stringify(r) + '\n');
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate runs after every promise continuation queued in this turn: one fsync per group.
        setImmediate(() => this.commit());
      }
    });
  }

  /** Append records synchronously; they are on disk when this returns (throws log_write_failed otherwise). */
  appendNow(records: readonly object[]): void {
    if (this.fd === undefined) throw closedError(this.path);
    if (records.length === 0) return;
    for (const r of records) this.pending.push(JSON.stringify(r) + '\n');
    const failure = this.flush();
    if (failure) throw failure;
  }

  /** Write and fsync everything pending now; returns the error the waiters were rejected with, if any. */
  flush(): TransferlabError | undefined {
    const group = this.takePending();
    if (!group) return undefined;
    try {
      if (this.fd === undefined) throw new Error('log is closed');
      writeAll(this.fd, group.data);
      fsyncSync(this.fd);
    } catch (e) {
      return this.fail(group.waiters, e);
    }
    for (const w of group.waiters) w.resolve();
    return undefined;
  }

  /** The records appended since the last commit and their waiters, taken out of the queue. */
  private takePending(): { data: string; waiters: Waiter[] } | undefined {
    this.scheduled = false;
    if (this.pending.length === 0) return undefined;
    const group = { data: this.pending.join(''), waiters: this.waiters };
    this.pending = [];
    this.waiters = [];
    return group;
  }

  /** A group that could not be written or synced: each of its waiters is told why. */
  private fail(waiters: Waiter[], e: unknown): TransferlabError {
    const err = new TransferlabError('log_write_failed', `cannot write ${this.path}: ${(e as Error).message}`, 503);
    for (const w of waiters) w.reject(err);
    return err;
  }

  /**
   * The group commit: written now, fsync'd in the thread pool, and the group's waiters told once it
   * returns. A later group may be written meanwhile: each fsync covers every byte written before it.
   */
  private commit(): void {
    const group = this.takePending();
    if (!group) return;
    const fd = this.fd;
    try {
      if (fd === undefined) throw new Error('log is closed');
      writeAll(fd, group.data);
    } catch (e) {
      this.fail(group.waiters, e);
      return;
    }
    this.syncing++;
    fsync(fd, (e) => {
      this.syncing--;
      if (e) this.fail(group.waiters, e);
      else for (const w of group.waiters) w.resolve();
      if (this.syncing === 0 && this.closeWhenSynced !== undefined) {
        closeSync(this.closeWhenSynced);
        this.closeWhenSynced = undefined;
      }
    });
  }

  close(): void {
    this.flush();
    // A group commit's fsync still running keeps the descriptor open until it returns (never fsync a closed, perhaps reused, fd).
    if (this.fd !== undefined) {
      if (this.syncing > 0) this.closeWhenSynced = this.fd;
      else closeSync(this.fd);
    }
    this.fd = undefined;
  }

  size(): number {
    return this.fd === undefined ? 0 : fstatSync(this.fd).size;
  }
}

function closedError(path: string): TransferlabError {
  return new TransferlabError('log_closed', `${path} is closed`, 500);
}

function writeAll(fd: number, text: string): void {
  // Loop: a write(2) may be short, and a record must be whole on disk.
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** fsync a directory, so a file created or renamed in it survives a crash. */
export function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems refuse fsync on directories; the file's own fsync still holds.
  }
}
