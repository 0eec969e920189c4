import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { TransferlabError } from '../../shared/errors.js';
import { JsonlLog, type JsonlOpenOptions } from '../../shared/jsonl-log.js';

/**
 * A run folder as the campaign sees it: named files under relative, '/'-separated paths. This is
 * the one module of the adversary that touches a run folder on disk (ARCHITECTURE.md, "The run
 * store"); the campaign's steps, checkpoints, pictures and report go through a RunStore, so a test
 * can run a whole campaign in memory. Every write replaces its file (or folder) atomically: an
 * interrupted run never leaves something that looks complete but is not. The oracle's answer cache
 * and query ledger are append-only logs opened through the store: on disk they follow
 * shared/jsonl-log.ts's rule (each record written and fsync'd before appendNow returns, or appendAll's promise resolves).
 */

/** An append-only log of records, one JSON line each. */
export interface RunLog {
  appendNow(records: readonly object[]): void;
  /** The same, without holding the thread while the disk syncs: on disk when the promise resolves. */
  appendAll(records: readonly object[]): Promise<void>;
  close(): void;
}

export interface OpenedRunLog {
  log: RunLog;
  /** The records already in the log, oldest first, and the 1-based line of each. */
  records: unknown[];
  lines: number[];
}
export interface RunStore {
  /** The run's name: its folder's last segment. */
  readonly name: string;
  /** Where a path lives, for messages: an absolute path on disk, memory:<name>/<path> otherwise. */
  where(path: string): string;
  /** A file or a non-empty folder. */
  exists(path: string): boolean;
  /** A file's bytes, or undefined when there is none. */
  read(path: string): Uint8Array | undefined;
  write(path: string, data: Uint8Array | string): void;
  /** Replaces the folder at `path` by exactly these files (paths relative to it), all at once. */
  writeFolder(path: string, files: Record<string, Uint8Array | string>): void;
  /** Names directly under a folder, sorted; [] when it does not exist. */
  list(path: string): string[];
  /** Opens the log at `path`, creating it when absent (on disk: torn tails and corrupt lines per `opts`). */
  openLog(path: string, opts: JsonlOpenOptions): OpenedRunLog;
  /** Writes the file unless one exists, without a race between two processes; returns what it holds. */
  createOnce(path: string, data: string): Uint8Array;
}

const bytes = (data: Uint8Array | string) => (typeof data === 'string' ? new TextEncoder().encode(data) : data);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

export function putJson(store: RunStore, path: string, value: unknown): void {
  store.write(path, JSON.stringify(value, null, 2) + '\n');
}

export function getJson<T>(store: RunStore, path: string): T {
  const data = store.read(path);
  if (!data) throw new TransferlabError('run_incomplete', `${store.where(path)} not found`);
  return JSON.parse(text(data)) as T;
}

/** The run folder at `dir` on disk; nothing is created until something is written. */
export function fileRunStore(dir: string): RunStore {
  const at = (p: string) => (isAbsolute(p) ? p : join(dir, p));
  return {
    name: dir.split('/').filter(Boolean).at(-1) ?? 'run',
    where: at,
    exists: (p) => existsSync(at(p)),
    read: (p) => (existsSync(at(p)) ? readFileSync(at(p)) : undefined),
    write: (p, data) => {
      mkdirSync(dirname(at(p)), { recursive: true });
      writeFileAtomic(at(p), data);
    },
    writeFolder: (p, files) => {
      const target = at(p);
      const tmp = `${target}.partial`;
      rmSync(tmp, { recursive: true, force: true });
      for (const [name, data] of Object.entries(files)) {
        mkdirSync(dirname(join(tmp, name)), { recursive: true });
        writeFileSync(join(tmp, name), data);
      }
      mkdirSync(tmp, { recursive: true });
      rmSync(target, { recursive: true, force: true });
      renameSync(tmp, target);
    },
    list: (p) => (existsSync(at(p)) ? readdirSync(at(p)).sort() : []),
    openLog: (p, opts) => {
      mkdirSync(dirname(at(p)), { recursive: true });
      return JsonlLog.open(at(p), opts);
    },
    createOnce: (p, data) => {
      mkdirSync(dirname(at(p)), { recursive: true });
      try {
        writeFileSync(at(p), data, { flag: 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      return readFileSync(at(p));
    },
  };
}

/** A run folder held in memory: for tests, and for runs that need nothing kept. */
export function memoryRunStore(name = 'run'): RunStore & { files(): string[] } {
  const files = new Map<string, Uint8Array>();
  const norm = (p: string) => p.split('/').filter((s) => s && s !== '.').join('/');
  const under = (p: string) => (norm(p) ? `${norm(p)}/` : '');
  return {
    name,
    where: (p) => `memory:${name}/${norm(p)}`,
    exists: (p) => files.has(norm(p)) || [...files.keys()].some((k) => k.startsWith(under(p))),
    read: (p) => files.get(norm(p)),
    write: (p, data) => void files.set(norm(p), Uint8Array.from(bytes(data))),
    writeFolder: (p, content) => {
      for (const k of [...files.keys()]) if (k.startsWith(under(p))) files.delete(k);
      for (const [k, data] of Object.entries(content)) files.set(`${under(p)}${norm(k)}`, Uint8Array.from(bytes(data)));
    },
    list: (p) => [...new Set([...files.keys()].filter((k) => k.startsWith(under(p))).map((k) => k.slice(under(p).length).split('/')[0]))].sort(),
    openLog: (p) => {
      const path = norm(p);
      const lines = text(files.get(path) ?? new Uint8Array(0)).split('\n').filter((l) => l !== '');
      if (!files.has(path)) files.set(path, new Uint8Array(0));
      const log: RunLog = {
        appendAll: async (records) => log.appendNow(records),
        appendNow: (records) => {
          if (records.length === 0) return;
          const before = files.get(path) ?? new Uint8Array(0);
          const added = bytes(records.map((r) => JSON.stringify(r) + '\n').join(''));
          const next = new Uint8Array(before.length + added.length);
          next.set(before);
          next.set(added, before.length);
          files.set(path, next);
        },
        close: () => undefined,
      };
      return { log, records: lines.map((l) => JSON.parse(l) as unknown), lines: lines.map((_, i) => i + 1) };
    },
    createOnce: (p, data) => {
      if (!files.has(norm(p))) files.set(norm(p), bytes(data));
      return files.get(norm(p))!;
    },
    /** Every file's path, sorted. */
    files: () => [...files.keys()].sort(),
  };
}

/** A store for a run given as a folder path, or the store itself. */
export const runStore = (run: RunStore | string): RunStore => (typeof run === 'string' ? fileRunStore(run) : run);

// Single files outside a campaign's store (compare pages, query-attack runs, the CLI's config files).

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

export function readJson<T>(path: string): T {
  if (!existsSync(path)) throw new TransferlabError('run_incomplete', `${path} not found`);
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
