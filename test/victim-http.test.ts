import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { API_ERRORS } from '../shared/protocol/index.js';
import { fromLayers, predictLabels } from '../shared/model/model.js';
import { loadModel } from '../shared/model/model-io.js';
import { createRng } from '../shared/random.js';
import { IMAGE_SIZE, imagesTensor, loadMnist } from '../shared/datasets/index.js';
import type { AuditEntry } from '../victim/store/audit.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, bytes, call, labelUint8, ledgerTotal, readJsonl, startKeyedVictim, type Reply, type KeyedVictim } from './victim-client.js';

/** The victim as a real process on a loopback port, serving a real trained model. */
const KEYS = {
  alice: 'alice-secret-0123456789abcdef', // equality checks: ample budget
  bob: 'bob-secret-0123456789abcdef', // the malformed-request table: budget 10
  carol: 'carol-secret-0123456789abcdef', // the budget race: budget 300
};
const MAX_BATCH = 300;
const N = 1000;

let victim: KeyedVictim;
let dir: string;
let expected: Int32Array;
const test = loadMnist('test');
const pixels = test.pixels.subarray(0, N * IMAGE_SIZE);
const floats = test.images.subarray(0, N * IMAGE_SIZE);

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const backend = (await initBackend()).backend;
  const { model } = await loadModel(modelDir);
  const x = imagesTensor(floats, N);
  expected = predictLabels(fromLayers(model), x);
  x.dispose();
  model.dispose();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-victim-http-'));
  victim = await startKeyedVictim({
    dir, model: modelDir, backend, keys: KEYS, budget: { alice: 100_000, bob: 10, carol: 300 }, rateLimit: 100_000, args: ['--max-batch', String(MAX_BATCH)],
  });
});

afterAll(async () => {
  const code = await victim?.stop();
  expect(code).toBe(0);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Split [0, N) into `parts` equal chunks and label them concurrently. */
async function labelConcurrently(parts: number, send: (start: number, count: number) => Promise<Reply>): Promise<number[]> {
  const size = N / parts;
  const replies = await Promise.all(Array.from({ length: parts }, (_, i) => send(i * size, size)));
  for (const r of replies) expect(r.status, JSON.stringify(r.body)).toBe(200);
  return replies.flatMap((r) => r.body.labels ?? []);
}

describe('victim over HTTP: labels equal in-process predictions', () => {
  it('JSON bodies', async () => {
    const labels = await labelConcurrently(4, (start, count) => {
      const inputs = Array.from({ length: count }, (_, i) => Array.from(floats.subarray((start + i) * IMAGE_SIZE, (start + i + 1) * IMAGE_SIZE)));
      return call(`${victim.url}/v1/label`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...bearer(KEYS.alice) }, body: JSON.stringify({ inputs }) });
    });
    expect(labels).toEqual(Array.from(expected));
  });

  it('uint8 bodies', async () => {
    const labels = await labelConcurrently(4, (start, count) =>
      labelUint8(victim.url, pixels.subarray(start * IMAGE_SIZE, (start + count) * IMAGE_SIZE), bearer(KEYS.alice)),
    );
    expect(labels).toEqual(Array.from(expected));
  });

  it('float32 bodies', async () => {
    const labels = await labelConcurrently(10, (start, count) => {
      const bytes = new Uint8Array(floats.slice(start * IMAGE_SIZE, (start + count) * IMAGE_SIZE).buffer); // little-endian host
      return labelUint8(victim.url, bytes, { ...bearer(KEYS.alice), 'X-Pixel-Format': 'float32' });
    });
    expect(labels).toEqual(Array.from(expected));
  });

  it('answers only labels and budget figures', async () => {
    const r = await labelUint8(victim.url, pixels.subarray(0, 2 * IMAGE_SIZE), { ...bearer(KEYS.alice), 'X-Request-Id': 'forged' });
    expect(Object.keys(r.body).sort()).toEqual(['budget', 'labels']);
    expect(r.body.budget).toEqual({ used: 3 * N + 2, limit: 100_000 });
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/); // minted by the server, never taken from the client
    const info = await call(`${victim.url}/v1/info`);
    expect(info.body).toEqual({ dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], inputRange: [0, 1], maxBatch: MAX_BATCH, output: 'label' });
    expect((await call(`${victim.url}/healthz`)).body).toEqual({ status: 'ok' });
    const spec = (await call(`${victim.url}/v1/openapi.json`)).body as unknown as { openapi: string; paths: Record<string, unknown> };
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/healthz', '/v1/info', '/v1/label', '/v1/openapi.json']));
  });
});

const json = (body: string, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...bearer(KEYS.bob), ...headers },
  body,
});
const binary = (body: Uint8Array, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/octet-stream', ...bearer(KEYS.bob), ...headers },
  body: bytes(body),
});
const image = (v: unknown = 0.5, at = 0) => {
  const a: unknown[] = new Array(IMAGE_SIZE).fill(0.25);
  a[at] = v;
  return a;
};
const inputs = (...images: unknown[]) => JSON.stringify({ inputs: images });
const f32 = (count: number, value = 0.5) => new Uint8Array(new Float32Array(count * IMAGE_SIZE).fill(value).buffer);

/** [description, path, request, status, code] */
const MALFORMED: [string, string, RequestInit, number, string][] = [
  ['unknown route', '/v1/nothing', { method: 'GET' }, 404, 'not_found'],
  ['unknown route, POST', '/v2/label', json(inputs(image())), 404, 'not_found'],
  ['DELETE on /v1/label', '/v1/label', { method: 'DELETE' }, 405, 'method_not_allowed'],
  ['GET on /v1/label', '/v1/label', { method: 'GET' }, 405, 'method_not_allowed'],
  ['POST on /v1/info', '/v1/info', json('{}'), 405, 'method_not_allowed'],
  ['no Authorization', '/v1/label', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: inputs(image()) }, 401, 'missing_api_key'],
  ['Basic instead of Bearer', '/v1/label', json(inputs(image()), { Authorization: `Basic ${Buffer.from(`bob:${KEYS.bob}`).toString('base64')}` }), 401, 'missing_api_key'],
  ['wrong key', '/v1/label', json(inputs(image()), bearer('bob-secret-0123456789abcdeX')), 401, 'invalid_api_key'],
  ['no Content-Type', '/v1/label', { method: 'POST', headers: bearer(KEYS.bob), body: new Uint8Array(IMAGE_SIZE) }, 415, 'unsupported_media_type'],
  ['text/plain', '/v1/label', json(inputs(image()), { 'Content-Type': 'text/plain' }), 415, 'unsupported_media_type'],
  ['JSON in latin-1', '/v1/label', json(inputs(image()), { 'Content-Type': 'application/json; charset=iso-8859-1' }), 415, 'unsupported_media_type'],
  ['unknown Content-Encoding', '/v1/label', binary(new Uint8Array(IMAGE_SIZE), { 'Content-Encoding': 'compress' }), 415, 'unsupported_content_encoding'],
  ['gzip header, body not gzip', '/v1/label', json(inputs(image()), { 'Content-Encoding': 'gzip' }), 400, 'invalid_content_encoding'],
  ['invalid JSON', '/v1/label', json('{"inputs": [[0.5,'), 400, 'invalid_json'],
  ['empty JSON body', '/v1/label', json(''), 400, 'invalid_json'],
  ['NaN literal', '/v1/label', json(`{"inputs":[[NaN${',0'.repeat(IMAGE_SIZE - 1)}]]}`), 400, 'invalid_json'],
  ['top-level array', '/v1/label', json(JSON.stringify([image()])), 400, 'invalid_body'],
  ['no inputs field', '/v1/label', json('{"input":[]}'), 400, 'invalid_body'],
  ['unknown field', '/v1/label', json(JSON.stringify({ inputs: [image()], logits: true })), 400, 'unknown_field'],
  ['inputs a string', '/v1/label', json('{"inputs":"abc"}'), 400, 'inputs_not_array'],
  ['inputs an object', '/v1/label', json('{"inputs":{"0":[]}}'), 400, 'inputs_not_array'],
  ['empty batch (JSON)', '/v1/label', json('{"inputs":[]}'), 400, 'empty_batch'],
  ['short image', '/v1/label', json(inputs([0.5, 0.5])), 400, 'invalid_image_length'],
  ['nested image 27 wide', '/v1/label', json(inputs(Array.from({ length: 28 }, () => new Array(27).fill(0)))), 400, 'invalid_image_length'],
  ['nested image, 2 channels', '/v1/label', json(inputs(Array.from({ length: 28 }, () => Array.from({ length: 28 }, () => [0, 0])))), 400, 'invalid_image_length'],
  ['image not an array', '/v1/label', json(inputs('x')), 400, 'invalid_image'],
  ['string pixel', '/v1/label', json(inputs(image('0.5', 3))), 400, 'invalid_pixel'],
  ['null pixel', '/v1/label', json(inputs(image(null, 5))), 400, 'invalid_pixel'],
  ['boolean pixel', '/v1/label', json(inputs(image(true, 7))), 400, 'invalid_pixel'],
  ['Infinity (1e999)', '/v1/label', json(inputs(image()).replace('0.5', '1e999')), 400, 'invalid_pixel'],
  ['pixel above 1', '/v1/label', json(inputs(image(1.5, 9))), 400, 'pixel_out_of_range'],
  ['pixel below 0', '/v1/label', json(inputs(image(), image(-0.001, 783))), 400, 'pixel_out_of_range'],
  ['JSON batch over maxBatch', '/v1/label', json(`{"inputs":[${Array.from({ length: MAX_BATCH + 1 }, () => `[${new Array(IMAGE_SIZE).fill(0).join(',')}]`).join(',')}]}`), 413, 'batch_too_large'],
  ['JSON body over the size limit', '/v1/label', json(`{"inputs":[]}${' '.repeat(MAX_BATCH * IMAGE_SIZE * 32 + 70_000)}`), 413, 'payload_too_large'],
  ['empty binary body', '/v1/label', binary(new Uint8Array(0)), 400, 'empty_batch'],
  ['binary not a multiple of 784', '/v1/label', binary(new Uint8Array(IMAGE_SIZE + 1)), 400, 'invalid_binary_length'],
  ['float32 not a multiple of 3136', '/v1/label', binary(new Uint8Array(IMAGE_SIZE), { 'X-Pixel-Format': 'float32' }), 400, 'invalid_binary_length'],
  ['float32 NaN', '/v1/label', binary(f32(1, NaN), { 'X-Pixel-Format': 'float32' }), 400, 'invalid_pixel'],
  ['float32 above 1', '/v1/label', binary(f32(2, 1.0001), { 'X-Pixel-Format': 'float32' }), 400, 'pixel_out_of_range'],
  ['unknown pixel format', '/v1/label', binary(new Uint8Array(IMAGE_SIZE), { 'X-Pixel-Format': 'float64' }), 400, 'invalid_pixel_format'],
  ['uint8 batch over maxBatch', '/v1/label', binary(new Uint8Array((MAX_BATCH + 1) * IMAGE_SIZE)), 413, 'batch_too_large'],
  ['binary body over the size limit', '/v1/label', binary(f32(MAX_BATCH + 1), { 'X-Pixel-Format': 'float32' }), 413, 'payload_too_large'],
  ['batch over the budget', '/v1/label', binary(new Uint8Array(11 * IMAGE_SIZE)), 429, 'budget_exhausted'],
];

describe('victim over HTTP: malformed requests', () => {
  it(`answers each of ${MALFORMED.length} malformed requests with the right 4xx and charges nothing`, async () => {
    const problems: string[] = [];
    for (const [what, path, init, status, code] of MALFORMED) {
      const r = await call(`${victim.url}${path}`, init);
      if (r.status !== status || r.body.error?.code !== code) {
        problems.push(`${what}: got ${r.status} ${JSON.stringify(r.body).slice(0, 200)}, want ${status} ${code}`);
      }
      expect(API_ERRORS[code as keyof typeof API_ERRORS]).toBe(status);
      expect(r.body.error?.message?.length ?? 0).toBeGreaterThan(10);
      if (status === 405) expect(r.headers.get('allow')).toBeTruthy();
    }
    expect(problems).toEqual([]);
    expect(ledgerTotal(victim.files.ledger, 'bob')).toBe(0);
    // Still serving, and bob's budget is untouched: this single image is his first charge.
    const ok = await labelUint8(victim.url, pixels.subarray(0, IMAGE_SIZE), bearer(KEYS.bob));
    expect(ok.status).toBe(200);
    expect(ok.body.budget).toEqual({ used: 1, limit: 10 });
    expect(ok.body.labels).toEqual([expected[0]]);
  });

  it('audits refusals, and never writes a key to the audit log, ledger or logs', () => {
    const audit = readJsonl<AuditEntry>(victim.files.audit);
    const bob = audit.filter((e) => e.keyId === 'bob');
    expect(bob.filter((e) => e.outcome === 'rejected').length).toBeGreaterThanOrEqual(25);
    expect(bob.filter((e) => e.outcome === 'answered').map((e) => e.images)).toEqual([1]);
    expect(audit.some((e) => e.keyId === null && e.code === 'invalid_api_key')).toBe(true);
    const everything = readFileSync(victim.files.audit, 'utf8') + readFileSync(victim.files.ledger, 'utf8') + victim.output();
    for (const key of Object.values(KEYS)) expect(everything).not.toContain(key);
    expect(victim.output()).toMatch(/"req":\{"id":"[^"]+","method":"POST","path":"\/v1\/label"\}/);
  });
});

describe('victim over HTTP: garbage', () => {
  it('never answers random garbage with a 5xx, and charges none of it', async () => {
    const rng = createRng(3);
    const pick = <T>(xs: T[]) => xs[Math.floor(rng() * xs.length)];
    const valid = JSON.stringify({ inputs: [Array.from(floats.subarray(0, IMAGE_SIZE))] });
    const gzipped = gzipSync(Buffer.from(valid));
    const statuses = new Map<string, number>();
    for (let i = 0; i < 150; i++) {
      const kind = pick(['bytes', 'mutated-json', 'mutated-gzip']);
      let body: Uint8Array;
      if (kind === 'bytes') body = Uint8Array.from({ length: Math.floor(rng() * 4000) }, () => Math.floor(rng() * 256));
      else {
        body = Buffer.from(kind === 'mutated-gzip' ? gzipped : Buffer.from(valid));
        for (let k = 0; k < 1 + rng() * 5; k++) body[Math.floor(rng() * body.length)] = Math.floor(rng() * 256);
      }
      const headers: Record<string, string> = {
        ...bearer(KEYS.bob),
        'Content-Type': pick(['application/json', 'application/octet-stream', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', '*/*', 'application/json; charset=utf-16']),
      };
      if (kind === 'mutated-gzip') headers['Content-Encoding'] = pick(['gzip', 'deflate', 'br']);
      if (rng() < 0.3) headers['X-Pixel-Format'] = pick(['float32', 'uint8', 'FLOAT32', 'int16', '']);
      const r = await call(`${victim.url}/v1/label`, { method: rng() < 0.1 ? 'PUT' : 'POST', headers, body: bytes(body) });
      const key = `${r.status} ${r.body.error?.code ?? "ok"}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (r.status >= 500) throw new Error(`${kind} ${JSON.stringify(headers)} → ${r.status} ${JSON.stringify(r.body)}`);
      if (r.status !== 200) expect(r.body.error?.code).toMatch(/^[a-z_]+$/);
    }
    // Bob's whole budget is 10: only answered garbage (if any) may have been charged.
    const charged = ledgerTotal(victim.files.ledger, 'bob');
    const answered = readJsonl<AuditEntry>(victim.files.audit).filter((e) => e.keyId === 'bob' && e.outcome === 'answered');
    expect(charged).toBe(answered.reduce((s, e) => s + e.images, 0));
    expect(statuses.size).toBeGreaterThan(3);
  });
});

describe('victim over HTTP: budgets under concurrency', () => {
  it('16 concurrent clients racing for one budget: charged == answered ≤ budget', async () => {
    const budget = 300;
    let answered = 0;
    let refused = 0;
    let maxUsed = 0;
    const client = async (c: number) => {
      for (let i = 0; ; i++) {
        const size = 1 + ((c * 7 + i * 5) % 13);
        const r = await labelUint8(victim.url, pixels.subarray(0, size * IMAGE_SIZE), bearer(KEYS.carol));
        if (r.status === 200) {
          answered += size;
          maxUsed = Math.max(maxUsed, r.body.budget?.used ?? 0);
          expect(r.body.labels).toHaveLength(size);
        } else {
          expect([r.status, r.body.error?.code]).toEqual([429, 'budget_exhausted']);
          refused++;
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, c) => client(c)));
    expect(answered).toBeLessThanOrEqual(budget);
    expect(answered).toBeGreaterThan(budget - 13); // the race really drained the budget
    expect(refused).toBe(16);
    expect(maxUsed).toBe(answered);
    expect(ledgerTotal(victim.files.ledger, 'carol')).toBe(answered);
    const audited = readJsonl<AuditEntry>(victim.files.audit).filter((e) => e.keyId === 'carol' && e.outcome === 'answered');
    expect(audited.reduce((s, e) => s + e.images, 0)).toBe(answered);
  });
});
