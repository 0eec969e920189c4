/**
 * The oracle client against a tiny express server that speaks the victim contract (shared/protocol/,
 * the victim API): a test of the client's wire format, retries, counting and cache, not of
 * the attack. Label of an image = its first pixel byte mod 10, so answers are checkable.
 */
import { mkdtempSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { checkPlan, planOf } from '../adversary/run/query-plan.js';
import { createHttpOracle, oracleFromLabeler, ANSWER_CACHE_FILE, QUERY_LEDGER_FILE, type RetryInfo } from '../adversary/oracle/client.js';
import { isTransferlabError } from '../shared/errors.js';

const PIXELS = 784;
interface Seen { n: number; format: string | undefined; auth: string | undefined; body: Buffer }
interface MockOpts { port?: number; maxBatch?: number; limit?: number; fail503?: number; rateLimited?: number; info?: unknown }

async function startVictim(o: MockOpts = {}) {
  const seen: Seen[] = [];
  const state = { used: 0, fail503: o.fail503 ?? 0, rateLimited: o.rateLimited ?? 0, keys: [] as (string | undefined)[] };
  const app = express();
  const oops = (res: express.Response, status: number, code: string, message: string) =>
    res.status(status).json({ error: { code, message } });
  app.get('/v1/info', (_req, res) => {
    res.json(o.info ?? { dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, inputRange: [0, 1], maxBatch: o.maxBatch ?? 64, output: 'label' });
  });
  app.post('/v1/label', express.raw({ type: 'application/octet-stream', limit: '50mb' }), (req, res) => {
    state.keys.push(req.get('Idempotency-Key'));
    if (state.fail503 > 0 && state.fail503--) return oops(res, 503, 'loading', 'model loading');
    if (state.rateLimited > 0 && state.rateLimited--) {
      res.set('Retry-After', '1');
      return oops(res, 429, 'rate_limited', 'slow down');
    }
    const format = req.get('X-Pixel-Format');
    const body = req.body as Buffer;
    const stride = format === 'float32' ? PIXELS * 4 : PIXELS;
    const n = body.length / stride;
    if (!Number.isInteger(n) || n === 0) return oops(res, 400, 'bad_request', `body of ${body.length} bytes`);
    if (o.limit !== undefined && state.used + n > o.limit) {
      return oops(res, 429, 'budget_exhausted', `budget of ${o.limit} queries used up (${state.used} used)`);
    }
    state.used += n;
    seen.push({ n, format, auth: req.get('Authorization'), body });
    const labels = Array.from({ length: n }, (_, i) =>
      format === 'float32' ? Math.round(body.readFloatLE(i * stride) * 255) % 10 : body[i * stride] % 10,
    );
    res.json({ labels, budget: { used: state.used, limit: o.limit ?? null } });
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(o.port ?? 0, '127.0.0.1', () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  const close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  cleanups.push(close);
  return { url: `http://127.0.0.1:${port}`, port, seen, state, close };
}

/** count images, image i has first pixel i/255 (label i mod 10) and a distinct second pixel. */
function images(count: number, offset = 0): Float32Array {
  const x = new Float32Array(count * PIXELS);
  for (let i = 0; i < count; i++) {
    x[i * PIXELS] = ((i + offset) % 256) / 255;
    x[i * PIXELS + 1] = Math.floor((i + offset) / 256) / 255;
    x[i * PIXELS + 2] = 0.5;
  }
  return x;
}
const expectedLabels = (count: number, offset = 0) => Array.from({ length: count }, (_, i) => ((i + offset) % 256) % 10);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'oracle-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
const fast = { baseDelayMs: 5, maxDelayMs: 50, windowMs: 5000 };
async function oracle(url: string, extra: Partial<Parameters<typeof createHttpOracle>[0]> = {}) {
  const o = await createHttpOracle({ url, retries: fast, random: () => 0.5, ...extra });
  cleanups.push(() => o.close());
  return o;
}
async function caught(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    if (isTransferlabError(e)) return e;
    throw e;
  }
  throw new Error('expected a TransferlabError');
}

describe('HTTP oracle client', () => {
  it('splits calls into batches of maxBatch and sends uint8 with the bearer key', async () => {
    const v = await startVictim({ maxBatch: 4 });
    const o = await oracle(v.url, { apiKey: 'k1' });
    expect((await o.info()).maxBatch).toBe(4);
    const labels = await o.label(images(10), 10, 'attack');
    expect([...labels]).toEqual(expectedLabels(10));
    expect(v.seen.map((s) => s.n)).toEqual([4, 4, 2]);
    expect(v.seen.every((s) => s.format === undefined && s.auth === 'Bearer k1')).toBe(true);
    expect(o.counts()).toEqual({ attack: 10, measurement: 0, cached: 0 });
    expect(o.victimBudget()).toEqual({ used: 10, limit: null });
  });

  it('a victim without GET /v1/budget is an unknown budget: the plan is printed with a warning and the run goes on', async () => {
    const v = await startVictim({ maxBatch: 4 });
    const o = await oracle(v.url, { apiKey: 'k1' });
    expect(await o.budget()).toBeNull();
    const lines: string[] = [];
    const check = await checkPlan(planOf([{ purpose: 'attack', what: 'seed', queries: 10, atMost: false }]), o, false, (l) => lines.push(l));
    expect(check).toMatchObject({ known: false, needed: 10 });
    expect(lines).toEqual(['planned victim queries: attack 10 (seed 10); measurement 0', expect.stringMatching(/^warning: the victim does not say this key's budget/)]);
    expect(v.seen).toEqual([]); // nothing was sent to be labelled, nothing paid
  });

  it('quantises to round(v*255) clamped, or sends float32 little-endian when asked', async () => {
    const v = await startVictim();
    const x = new Float32Array(PIXELS);
    x.set([0.5, 1.2, -0.1, 0.3, 1 / 255 + 0.001]);
    await (await oracle(v.url)).label(x, 1, 'attack');
    expect([...v.seen[0].body.subarray(0, 5)]).toEqual([128, 255, 0, 77, 1]);
    expect(v.seen[0].body.length).toBe(PIXELS);

    const f = await oracle(v.url, { format: 'float32' });
    await f.label(x, 1, 'attack');
    const s = v.seen[1];
    expect(s.format).toBe('float32');
    expect(s.body.length).toBe(PIXELS * 4);
    expect([0, 1, 2, 3].map((i) => s.body.readFloatLE(i * 4))).toEqual([0.5, 1, 0, Math.fround(0.3)]);
  });

  it('retries 503 and 429 rate_limited (honouring Retry-After), paying once', async () => {
    const v = await startVictim({ fail503: 2, rateLimited: 1 });
    const retries: RetryInfo[] = [];
    const dir = tmp();
    const o = await oracle(v.url, { onRetry: (r) => retries.push(r), cacheDir: dir });
    expect([...(await o.label(images(3), 3, 'measurement'))]).toEqual(expectedLabels(3));
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(retries[0].reason).toMatch(/503 loading/);
    expect(retries[0].delayMs).toBe(3); // 0.5 · min(50, 5·2^0): the injected jitter
    expect(retries[2].delayMs).toBeGreaterThanOrEqual(1000);
    expect(o.counts()).toEqual({ attack: 0, measurement: 3, cached: 0 });
    expect(v.state.keys).toHaveLength(4);
    expect(new Set(v.state.keys).size).toBe(1); // the same key on every retry of the batch
    expect(v.state.keys[0]).toMatch(/^[0-9a-f-]{36}\.[0-9a-f]{64}$/); // the run's id, then the body's hash
    const ledger = readFileSync(join(dir, QUERY_LEDGER_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(ledger).toMatchObject([{ purpose: 'measurement', sent: 3, cached: 0, status: 'ok', http: 200, attempts: 4 }]);
  });

  it('waits for a victim that comes up late, and rides out a restart between calls', async () => {
    const probe = await startVictim();
    const port = probe.port;
    await probe.close();
    const retries: RetryInfo[] = [];
    let late: Awaited<ReturnType<typeof startVictim>> | undefined;
    setTimeout(() => void startVictim({ port }).then((v) => (late = v)), 300);
    const o = await oracle(`http://127.0.0.1:${port}/`, { onRetry: (r) => retries.push(r) });
    expect(retries.length).toBeGreaterThan(0);
    expect(retries[0].reason).toMatch(/ECONNREFUSED/);
    await o.label(images(2), 2, 'attack');

    await late?.close(); // the victim goes down between calls and comes back
    const before = retries.length;
    setTimeout(() => void startVictim({ port }), 200);
    expect([...(await o.label(images(2, 5), 2, 'attack'))]).toEqual(expectedLabels(2, 5));
    expect(retries.length).toBeGreaterThan(before);
    expect(o.counts().attack).toBe(4);
  });

  it('gives up past the retry window with victim_unreachable naming the URL', async () => {
    const probe = await startVictim();
    await probe.close();
    const e = await caught(createHttpOracle({ url: probe.url, retries: { ...fast, windowMs: 200 } }));
    expect(e.code).toBe('victim_unreachable');
    expect(e.message).toContain(probe.url);
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it('rejects a URL that is not a victim, or a malformed /v1/info', async () => {
    const other = express();
    const s: Server = await new Promise((r) => { const x = other.listen(0, '127.0.0.1', () => r(x)); });
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const e = await caught(createHttpOracle({ url }));
    expect(e.code).toBe('bad_victim_url');
    expect(e.message).toContain(url);
    const bad = await startVictim({ info: { dataset: 'mnist', classes: 10 } });
    expect((await caught(createHttpOracle({ url: bad.url }))).code).toBe('victim_info_invalid');
    expect((await caught(createHttpOracle({ url: 'ftp://x' }))).code).toBe('bad_victim_url');
  });

  it('never retries budget_exhausted: stops with the victim code and message, keeps what was paid', async () => {
    const v = await startVictim({ maxBatch: 4, limit: 5 });
    const retries: RetryInfo[] = [];
    const dir = tmp();
    const o = await oracle(v.url, { onRetry: (r) => retries.push(r), cacheDir: dir });
    const e = await caught(o.label(images(8), 8, 'attack'));
    expect(e.code).toBe('budget_exhausted');
    expect(e.status).toBe(429);
    expect(e.message).toMatch(/budget of 5 queries used up/);
    expect(retries).toEqual([]);
    expect(v.seen.map((s) => s.n)).toEqual([4]);
    expect(o.counts()).toEqual({ attack: 4, measurement: 0, cached: 0 });
    const ledger = readFileSync(join(dir, QUERY_LEDGER_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(ledger).toMatchObject([{ status: 'ok', sent: 4 }, { status: 'budget_exhausted', sent: 4, http: 429, attempts: 1 }]);
    // The first batch's answers are kept: asking again pays only the rest (and still fails).
    await caught(o.label(images(8), 8, 'attack'));
    expect(o.counts().cached).toBe(4);
  });

  it('answers repeats and in-call duplicates from the cache, on disk across instances', async () => {
    const v = await startVictim({ maxBatch: 8 });
    const dir = tmp();
    const o = await oracle(v.url, { cacheDir: dir });
    const x = images(6);
    x.copyWithin(4 * PIXELS, 1 * PIXELS, 2 * PIXELS); // image 4 = image 1
    x.copyWithin(5 * PIXELS, 1 * PIXELS, 2 * PIXELS); // image 5 = image 1
    const first = await o.label(x, 6, 'attack');
    expect(v.seen.map((s) => s.n)).toEqual([4]);
    expect(first[4]).toBe(first[1]);
    expect(o.counts()).toEqual({ attack: 4, measurement: 0, cached: 2 });

    expect([...(await o.label(x, 6, 'measurement'))]).toEqual([...first]);
    expect(v.seen.length).toBe(1);
    expect(o.counts()).toEqual({ attack: 4, measurement: 0, cached: 8 });

    // Overlapping calls for the same new image pay for it once.
    const y = images(1, 30);
    await Promise.all([o.label(y, 1, 'attack'), o.label(y, 1, 'attack')]);
    expect(v.seen.map((s) => s.n)).toEqual([4, 1]);
    expect(o.counts()).toEqual({ attack: 5, measurement: 0, cached: 9 });

    // A uint8 answer is not reused for the float32 bytes of the same image.
    const f = await oracle(v.url, { cacheDir: tmp(), format: 'float32' });
    await f.label(x, 1, 'attack');
    expect(v.seen.length).toBe(3);

    await o.close();
    appendFileSync(join(dir, ANSWER_CACHE_FILE), '{"h":"ab'); // a write torn by kill -9
    const again = await oracle(v.url, { cacheDir: dir });
    expect(again.priorCounts()).toEqual({ attack: 5, measurement: 0 });
    expect([...(await again.label(x, 6, 'attack'))]).toEqual([...first]);
    await again.label(images(1, 40), 1, 'measurement');
    expect(v.seen.map((s) => s.n)).toEqual([4, 1, 1, 1]);
    expect(again.counts()).toEqual({ attack: 0, measurement: 1, cached: 6 });
    const lines = readFileSync(join(dir, ANSWER_CACHE_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(6);
    expect(lines.at(-1)).toMatchObject({ l: 0, p: 'measurement' });
  });

  it('refuses other 4xx at once, and labels out of range from a broken victim', async () => {
    const app = express();
    app.get('/v1/info', (_q, r) => { r.json({ dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, inputRange: [0, 1], maxBatch: 8, output: 'label' }); });
    let calls = 0;
    app.post('/v1/label', (q, r) => {
      calls++;
      if (!q.get('Authorization')) return r.status(401).json({ error: { code: 'unauthorized', message: 'send a key' } });
      r.json({ labels: [12], budget: { used: 1, limit: null } });
    });
    const s: Server = await new Promise((r) => { const x = app.listen(0, '127.0.0.1', () => r(x)); });
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const e = await caught((await oracle(url)).label(images(1), 1, 'attack'));
    expect([e.code, e.status, calls]).toEqual(['unauthorized', 401, 1]);
    expect(e.message).toMatch(/send a key/);
    expect((await caught((await oracle(url, { apiKey: 'k' })).label(images(1), 1, 'attack'))).code).toBe('victim_bad_response');
  });
});

describe('oracleFromLabeler', () => {
  it('sees the quantised images and counts like the HTTP client', async () => {
    const received: number[] = [];
    const o = oracleFromLabeler((x, n) => {
      received.push(x[0], n);
      return Int32Array.from({ length: n }, (_, i) => Math.round(x[i * PIXELS] * 255) % 10);
    }, { maxBatch: 3 });
    const x = images(5, 20);
    x[0] = 0.0301; // quantised to 8/255
    const labels = await o.label(x, 5, 'attack');
    expect([...labels]).toEqual([8, 1, 2, 3, 4]);
    expect(received).toEqual([Math.fround(8 / 255), 3, Math.fround(23 / 255), 2]);
    await o.label(x, 2, 'measurement');
    expect(o.counts()).toEqual({ attack: 5, measurement: 0, cached: 2 });
  });
});
