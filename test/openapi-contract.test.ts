import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { API_ERRORS, HEADERS, PATHS, type ApiErrorCode } from '../shared/protocol/index.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, bytes, call, labelUint8, startKeyedVictim, type Reply, type KeyedVictim } from './victim-client.js';

/**
 * The OpenAPI document the victim serves is generated from the contract; this holds it against what
 * a real victim process actually answers: every body must validate against the schema the document
 * gives for that path and status, and every error code must be documented under its status.
 */
const KEY = 'contract-key-0123456789abcdef';
const SMALL = 'contract-small-0123456789abcdef';
const MAX_BATCH = 20;

interface Operation {
  requestBody?: { content: Record<string, { schema: object }> };
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, object> };
}

let victim: KeyedVictim;
let dir: string;
let doc: Document;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const pixels = loadMnist('test').pixels.subarray(0, 4 * IMAGE_SIZE);

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const backend = (await initBackend()).backend;
  dir = mkdtempSync(join(tmpdir(), 'transferlab-openapi-'));
  victim = await startKeyedVictim({
    dir, model: modelDir, backend, args: ['--max-batch', String(MAX_BATCH)],
    keys: [{ id: 'a', key: KEY, budget: 1000 }, { id: 's', key: SMALL, budget: 2 }, { id: 'b', key: 'contract-budget-0123456789abcdef', budget: 50 }],
  });
  doc = (await call(`${victim.url}${PATHS.openapi}`)).body as unknown as Document;
  ajv.addSchema({ $id: 'doc', components: doc.components });
});

afterAll(async () => {
  expect(await victim?.stop()).toBe(0);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The schema the document gives for this answer, with $refs resolved against the document's components. */
function responseSchema(path: string, method: string, status: number): object {
  const op = doc.paths[path]?.[method];
  expect(op, `${method} ${path} is documented`).toBeDefined();
  const response = op.responses[String(status)];
  expect(response, `${method} ${path} documents HTTP ${status}`).toBeDefined();
  const schema = response.content?.['application/json']?.schema;
  expect(schema, `${method} ${path} HTTP ${status} has a JSON schema`).toBeDefined();
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components', '"doc#/components')) as object;
}

function expectDocumented(path: string, method: string, reply: Reply, status: number): void {
  expect(reply.status).toBe(status);
  const validate = ajv.compile(responseSchema(path, method, reply.status));
  expect(validate(reply.body), `${method} ${path} → ${reply.status} ${JSON.stringify(reply.body).slice(0, 200)}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  if (reply.body.error) expect(API_ERRORS[reply.body.error.code as ApiErrorCode]).toBe(reply.status);
}

const post = (body: string | Uint8Array, headers: Record<string, string>) =>
  call(`${victim.url}${PATHS.label}`, { method: 'POST', headers, body: typeof body === 'string' ? body : bytes(body) });
const json = { 'Content-Type': 'application/json', ...bearer(KEY) };

describe('the generated OpenAPI document against a running victim', () => {
  it('is OpenAPI 3.1 whose schemas compile, and documents every error code under its status', () => {
    expect(doc.openapi).toBe('3.1.0');
    for (const name of Object.keys(doc.components.schemas)) expect(() => ajv.getSchema(`doc#/components/schemas/${name}`)).not.toThrow();
    const label = doc.paths[PATHS.label].post.responses;
    for (const [code, status] of Object.entries(API_ERRORS)) {
      expect(label[String(status)], `HTTP ${status} (${code}) is documented`).toBeDefined();
      expect(JSON.stringify(label[String(status)])).toContain(code);
    }
  });

  it('describes the real /healthz and /v1/info answers', async () => {
    expectDocumented(PATHS.health, 'get', await call(`${victim.url}${PATHS.health}`), 200);
    const info = await call(`${victim.url}${PATHS.info}`);
    expectDocumented(PATHS.info, 'get', info, 200);
    expect(info.body).toMatchObject({ inputShape: [28, 28, 1], classes: 10, maxBatch: MAX_BATCH });
    expectDocumented(PATHS.info, 'get', await call(`${victim.url}${PATHS.info}`, { method: 'POST' }), 405);
  });

  it('describes the real /v1/budget answers: the caller key\'s count, read for free', async () => {
    const key = 'contract-budget-0123456789abcdef';
    const read = () => call(`${victim.url}${PATHS.budget}`, { headers: bearer(key) });
    const first = await read();
    expectDocumented(PATHS.budget, 'get', first, 200);
    expect(first.body).toEqual({ used: 0, limit: 50 });
    expect((await labelUint8(victim.url, pixels.subarray(0, 3 * IMAGE_SIZE), bearer(key))).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await read()).body).toEqual({ used: 3, limit: 50 });
    expectDocumented(PATHS.budget, 'get', await call(`${victim.url}${PATHS.budget}`), 401);
    expectDocumented(PATHS.budget, 'get', await call(`${victim.url}${PATHS.budget}`, { headers: bearer('not-a-key-0123456789') }), 401);
    expectDocumented(PATHS.budget, 'get', await call(`${victim.url}${PATHS.budget}`, { method: 'POST', headers: bearer(key) }), 405);
  });

  it('describes real labels, for binary and for JSON bodies the request schema accepts', async () => {
    expectDocumented(PATHS.label, 'post', await labelUint8(victim.url, pixels, bearer(KEY)), 200);
    const floats = Array.from(pixels.subarray(0, IMAGE_SIZE), (p) => p / 255);
    const nested = Array.from({ length: 28 }, (_, y) => floats.slice(y * 28, y * 28 + 28).map((v) => [v]));
    const body = { inputs: [floats, nested] };
    const request = ajv.compile({ $ref: 'doc#/components/schemas/LabelRequest' });
    expect(request(body), ajv.errorsText(request.errors)).toBe(true);
    const reply = await post(JSON.stringify(body), json);
    expectDocumented(PATHS.label, 'post', reply, 200);
    // The flat and the nested spelling of one image are the same image.
    expect(reply.body.labels?.[0]).toBe(reply.body.labels?.[1]);
  });

  it('describes real error bodies, and the request schema refuses what the victim refuses', async () => {
    const request = ajv.compile({ $ref: 'doc#/components/schemas/LabelRequest' });
    const cases: { body: string | Uint8Array; headers: Record<string, string>; status: number; code: string; schemaRefuses?: boolean }[] = [
      { body: pixels, headers: { 'Content-Type': 'application/octet-stream' }, status: 401, code: 'missing_api_key' },
      { body: pixels, headers: { 'Content-Type': 'application/octet-stream', ...bearer('nope-0123456789abcdef') }, status: 401, code: 'invalid_api_key' },
      { body: '{"inputs":[', headers: json, status: 400, code: 'invalid_json' },
      { body: JSON.stringify({ inputs: [[0.5, 0.5]] }), headers: json, status: 400, code: 'invalid_image_length', schemaRefuses: true },
      { body: JSON.stringify({ inputs: [Array(IMAGE_SIZE).fill(2)] }), headers: json, status: 400, code: 'pixel_out_of_range', schemaRefuses: true },
      { body: JSON.stringify({ inputs: [], extra: 1 }), headers: json, status: 400, code: 'unknown_field', schemaRefuses: true },
      { body: JSON.stringify({ inputs: [] }), headers: json, status: 400, code: 'empty_batch', schemaRefuses: true },
      { body: new Uint8Array((MAX_BATCH + 1) * IMAGE_SIZE), headers: { 'Content-Type': 'application/octet-stream', ...bearer(KEY) }, status: 413, code: 'batch_too_large' },
      { body: 'x', headers: { 'Content-Type': 'text/plain', ...bearer(KEY) }, status: 415, code: 'unsupported_media_type' },
      { body: pixels, headers: { 'Content-Type': 'application/octet-stream', [HEADERS.pixelFormat]: 'int4', ...bearer(KEY) }, status: 400, code: 'invalid_pixel_format' },
      { body: pixels, headers: { 'Content-Type': 'application/octet-stream', ...bearer(SMALL) }, status: 429, code: 'budget_exhausted' },
    ];
    for (const c of cases) {
      const reply = await post(c.body, c.headers);
      expect(reply.body.error?.code, JSON.stringify(reply.body)).toBe(c.code);
      expectDocumented(PATHS.label, 'post', reply, c.status);
      if (c.schemaRefuses) expect(request(JSON.parse(c.body as string))).toBe(false);
    }
    // Same key, different body: 422.
    const key = { ...bearer(KEY), 'Content-Type': 'application/octet-stream', [HEADERS.idempotencyKey]: 'contract-test-key' };
    expectDocumented(PATHS.label, 'post', await post(pixels.subarray(0, IMAGE_SIZE), key), 200);
    expectDocumented(PATHS.label, 'post', await post(pixels.subarray(IMAGE_SIZE, 2 * IMAGE_SIZE), key), 422);
    expectDocumented(PATHS.label, 'post', await call(`${victim.url}${PATHS.label}`), 405);
  });
});
