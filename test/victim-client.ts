import { existsSync, readFileSync } from 'node:fs';
import { contractClient, fetchTransport, wireRequest, type ContractClient } from '../shared/protocol/index.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';

/** Helpers shared by the victim test suites: a real victim process and a raw HTTP client. */
export interface TestVictim extends VictimProcess {
  /** The server's own pid, from its banner (the same as child.pid unless a wrapper such as the tsx binary sits between). */
  pid: number;
  /** Everything the victim wrote to stdout and stderr since it was ready. */
  output: () => string;
}

export async function startVictim(args: string[], backend: string): Promise<TestVictim> {
  let pid = 0;
  let out = '';
  const victim = await spawnVictim({
    args: [...args, '--port', '0', '--no-train', '--backend', backend],
    timeoutMs: 60_000,
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
