import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { contractClient, fetchTransport, wireRequest, type ContractClient } from '../shared/protocol/index.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';

/** Helpers shared by the victim test suites: a real victim process and a raw HTTP client. */
export interface TestVictim extends VictimProcess {
  /** The server's own pid, from its banner (the same as child.pid unless a wrapper such as the tsx binary sits between). */
  pid: number;
  /** Everything the victim wrote to stdout and stderr since it was ready. */
  output: () => string;
}

export function startVictim(args: string[], backend: string): Promise<TestVictim> {
  return launch(args, backend, 60_000);
}

/** A victim on any free port, never training; `backend` unset leaves the choice to the victim. */
async function launch(args: readonly string[], backend: string | undefined, timeoutMs: number): Promise<TestVictim> {
  let pid = 0;
  let out = '';
  const victim = await spawnVictim({
    args: [...args, '--port', '0', '--no-train', ...(backend === undefined ? [] : ['--backend', backend])],
    timeoutMs,
    onLine: (line) => {
      out += line + '\n';
      const m = /^pid (\d+)$/.exec(line);
      if (m) pid = Number(m[1]);
    },
  });
  victim.child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  if (!pid) throw new Error(`the victim printed no pid line:\n${out}`);
  return { ...victim, pid, output: () => out };
}

/** One entry of a victim's keys file; a key without a budget is unlimited. */
export interface KeyEntry {
  id: string;
  key: string;
  budget?: number;
}

/** Where a keyed victim keeps its files in a test's folder. */
export interface KeyedVictimFiles {
  keys: string;
  audit: string;
  ledger: string;
}

export interface KeyedVictimOptions {
  /** The test's own temporary folder: keys.json, the audit log and the ledger are written there. */
  dir: string;
  model: string;
  /** The keys file's entries, or id → key. */
  keys: readonly KeyEntry[] | Readonly<Record<string, string>>;
  /** The budget of every key that sets none: one for all, or by id. */
  budget?: number | Readonly<Record<string, number>>;
  /** The TF.js backend; unset, the victim picks its own. */
  backend?: string;
  /** --rate-limit in requests/s per key; unset, the victim's default. */
  rateLimit?: number;
  /** For several victims in one folder: their logs are audit-NAME.jsonl and ledger-NAME.jsonl (they share keys.json). */
  name?: string;
  /** Pass --ledger (the default); false for a victim whose budgets live in a shared store (--store), which has no use for one. */
  ledger?: boolean;
  /** Any further victim flags. */
  args?: readonly string[];
  timeoutMs?: number;
}

export interface KeyedVictim extends TestVictim {
  files: KeyedVictimFiles;
}

const isKeyList = (keys: KeyedVictimOptions['keys']): keys is readonly KeyEntry[] => Array.isArray(keys);

/** The files a keyed victim named `name` (see KeyedVictimOptions) uses in `dir`, before or after it runs. */
export function keyedVictimFiles(dir: string, name?: string): KeyedVictimFiles {
  const suffix = name === undefined ? '' : `-${name}`;
  return { keys: join(dir, 'keys.json'), audit: join(dir, `audit${suffix}.jsonl`), ledger: join(dir, `ledger${suffix}.jsonl`) };
}

/**
 * A real victim that asks for API keys: writes the keys file into `dir` and starts the victim with it,
 * its audit log and its ledger there. Victims started side by side share one keys file: it is written
 * only when its text changes, so that a victim already reading it never meets it half-written.
 */
export async function startKeyedVictim(opts: KeyedVictimOptions): Promise<KeyedVictim> {
  const files = keyedVictimFiles(opts.dir, opts.name);
  const entries: readonly KeyEntry[] = isKeyList(opts.keys) ? opts.keys : Object.entries(opts.keys).map(([id, key]) => ({ id, key }));
  const budgetOf = (id: string) => (typeof opts.budget === 'object' ? opts.budget[id] : opts.budget);
  const text = JSON.stringify({ keys: entries.map((k) => ({ ...k, budget: k.budget ?? budgetOf(k.id) })) });
  if (!existsSync(files.keys) || readFileSync(files.keys, 'utf8') !== text) writeFileSync(files.keys, text);
  const args = ['--model', opts.model, '--keys', files.keys, '--audit-log', files.audit, ...(opts.ledger === false ? [] : ['--ledger', files.ledger])];
  if (opts.rateLimit !== undefined) args.push('--rate-limit', String(opts.rateLimit));
  const victim = await launch([...args, ...(opts.args ?? [])], opts.backend, opts.timeoutMs ?? 60_000);
  return { ...victim, files };
}

/** The wrapper's exit code once the server exited by itself (after a signal sent to `pid`). */
export function exited(victim: VictimProcess): Promise<number | null> {
  const { child } = victim;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export interface Reply {
  status: number;
  headers: Headers;
  body: { labels?: number[]; budget?: { used: number; limit: number | null }; error?: { code: string; message: string } };
}

export async function call(url: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetchOnce(url, init);
  const text = await res.text();
  let body: Reply['body'] = {};
  try {
    body = JSON.parse(text) as Reply['body'];
  } catch {
    throw new Error(`${init.method ?? 'GET'} ${url} → ${res.status} with a non-JSON body: ${text.slice(0, 200)}`);
  }
  return { status: res.status, headers: res.headers, body };
}

/**
 * fetch, with a GET sent again once when the pooled keep-alive connection it went out on was closed by
 * the server as it left (the victim drops connections idle for its keep-alive time; on a loaded
 * machine a test's pause between calls can meet that exactly). Nothing else is retried.
 */
async function fetchOnce(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    if ((init.method ?? 'GET') !== 'GET' || cause?.code !== 'UND_ERR_SOCKET') throw e;
    return fetch(url, init);
  }
}

export const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

/** fetch's BodyInit wants an ArrayBuffer-backed view; MNIST subarrays are, the types just cannot tell. */
export const bytes = (u8: Uint8Array) => u8 as Uint8Array<ArrayBuffer>;

/** The contract's label request with uint8 pixels (and any extra headers), its reply read raw. */
export function labelUint8(base: string, pixels: Uint8Array, headers: Record<string, string> = {}): Promise<Reply> {
  const req = wireRequest('label', { images: { format: 'uint8', bytes: pixels } });
  return call(`${base}${req.path}`, { method: req.method, headers: { ...req.headers, ...headers }, body: bytes(pixels) });
}

/** The contract's typed client over fetch, without retries: answers validated by the route's schema. */
export function victimClient(base: string, apiKey?: string): ContractClient {
  return contractClient(base, fetchTransport(), { apiKey });
}

export function readJsonl<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as T];
      } catch {
        return []; // a torn line from a kill -9 is not a record
      }
    });
}

export function ledgerTotal(path: string, key: string): number {
  return readJsonl<{ key: string; images: number }>(path)
    .filter((r) => r.key === key)
    .reduce((s, r) => s + r.images, 0);
}
