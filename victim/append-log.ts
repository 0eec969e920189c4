import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { TransferlabError } from '../shared/errors.js';

/**
 * An append-only JSON-lines file that is durable before anyone is told a record is written: every
 * record reaches the disk with writeSync + fsyncSync before its promise resolves.
 *
 * Group commit: records appended during one turn of the event loop (the micro-batcher resolves a
 * whole batch of requests at once) share a single write + fsync, so durability costs one fsync per
 * model call rather than one per request.
 */
export interface OpenedLog {
  log: AppendLog;
  /** Records already in the file, oldest first. */
  records: unknown[];
  /** A torn (partial) last line left by a crash, if any: kept or dropped as `torn` said. */
  tornTail?: string;
}

export interface OpenOptions {
  /**
   * What to do with a partial last line (a crash in the middle of a write, which means that write's
   * fsync never returned and nobody was answered from it): 'drop' truncates it (the ledger: the charge
   * was never confirmed), 'keep' ends it with a newline so it stays as evidence (the audit log).
   */
  torn: 'drop' | 'keep';
}

export class AppendLog {
  private fd: number | undefined;
  private pending: string[] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  static open(path: string, opts: OpenOptions): OpenedLog {
    let text = '';
    try {
      mkdirSync(dirname(path), { recursive: true });
      if (existsSync(path)) text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new TransferlabError('log_unreadable', `cannot read ${path}: ${(e as Error).message}`, 500);
    }
    const lastNewline = text.lastIndexOf('\n');
    const complete = text.slice(0, lastNewline + 1);
    const tail = text.slice(lastNewline + 1);
    const records: unknown[] = [];
    complete.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push(JSON.parse(line));
      } catch {
        // A bad line in the middle is not a torn write: refuse rather than silently miscount.
        throw new TransferlabError('log_corrupt', `${path} line ${i + 1} is not valid JSON; restore the file from a backup or move it aside`, 500);
      }
    });
    let fd: number;
    try {
      fd = openSync(path, 'a');
      if (tail !== '') {
        if (opts.torn === 'drop') ftruncateSync(fd, Buffer.byteLength(complete));
        else writeAll(fd, '\n');
        fsyncSync(fd);
      }
      // Make the file's directory entry durable too, so a fresh log survives a crash.
      syncDir(dirname(path));
    } catch (e) {
      throw new TransferlabError('log_unwritable', `cannot open ${path} for appending: ${(e as Error).message}`, 500);
    }
    return { log: new AppendLog(path, fd), records, tornTail: tail || undefined };
  }

  /** Append a record; resolves once it is on disk. */
  append(record: object): Promise<void> {
    if (this.fd === undefined) return Promise.reject(new TransferlabError('log_closed', `${this.path} is closed`, 500));
    this.pending.push(JSON.stringify(record) + '\n');
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate runs after every promise continuation queued in this turn: one fsync per group.
        setImmediate(() => this.flush());
      }
    });
  }

  /** Write and fsync everything pending now. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const data = this.pending.join('');
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      if (this.fd === undefined) throw new Error('log is closed');
      writeAll(this.fd, data);
      fsyncSync(this.fd);
    } catch (e) {
      const err = new TransferlabError('log_write_failed', `cannot write ${this.path}: ${(e as Error).message}`, 503);
      for (const w of waiters) w.reject(err);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  size(): number {
    return this.fd === undefined ? 0 : fstatSync(this.fd).size;
  }
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

function syncDir(dir: string): void {
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
