import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { API_ERRORS, HEADERS, type ApiErrorCode } from '../shared/protocol/index.js';
import { ensureTestVictim } from './fixtures.js';
import { call, ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * Property: no malformed /v1/label body — random JSON of the wrong types, nested junk, huge or
 * NaN-ish numbers, wrong lengths; binary bodies of the wrong size or with bad floats; wrong
 * Content-Types — ever gets a 5xx or charges the key. Each gets a JSON error whose code is one that
 * names its fault, at the status the contract gives that code. A real victim over loopback;
 * seeded, with a bounded number of runs.
 */
const KEY = 'fuzz-secret-0123456789abcdef';
const PIXELS = 784;
let root: string;
let victim: KeyedVictim;

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  root = mkdtempSync(join(tmpdir(), 'transferlab-fuzz-'));
  victim = await startKeyedVictim({ dir: root, model: modelDir, backend, keys: [{ id: 'fuzz', key: KEY, budget: 1_000_000 }], rateLimit: 0, args: ['--log-level', 'silent', '--max-batch', '8'] });
});

afterAll(async () => {
  await victim?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A malformed request and the error codes that would name what is wrong with it. */
interface Case {
  body: string | Uint8Array;
  headers: Record<string, string>;
  codes: ApiErrorCode[];
  /** Text the message must contain (where the fault is). */
  mentions?: string;
}

const json = (body: string, codes: ApiErrorCode[], mentions?: string): Case => ({ body, headers: { 'Content-Type': 'application/json' }, codes, mentions });
const pixel = fc.double({ min: 0, max: 1, noNaN: true }).map((v) => Number(v.toPrecision(3)));
const image = fc.array(pixel, { minLength: PIXELS, maxLength: PIXELS });

/** Spelled as raw JSON text, so literals JSON.stringify cannot write (1e999) are reachable. */
const badPixel = fc.constantFrom(
  '"NaN"', '"0.5"', '""', 'null', 'true', '{}', '[]', '[0.5]', '1e999', '-1e999', '1e308', '12345678901234567890',
  '-1e-300', '1.0000001', '2', '-0.5', '"Infinity"', '{"v":0.5}',
);

const jsonCases: fc.Arbitrary<Case> = fc.oneof(
  // Not JSON at all, or cut short.
  fc.string({ maxLength: 60 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }).map((s) => json(s, ['invalid_json'])),
  fc.tuple(image, fc.integer({ min: 1, max: 3000 })).map(([img, cut]) => json(JSON.stringify({ inputs: [img] }).slice(0, cut), ['invalid_json'])),
  fc.constantFrom('{"inputs":[[NaN]]}', '{"inputs":[[Infinity]]}', "{'inputs':[]}", '{"inputs":[0.5,]}').map((s) => json(s, ['invalid_json'])),
  // Any JSON value that is not an object with "inputs".
  fc.jsonValue({ maxDepth: 3 }).filter((v) => v === null || typeof v !== 'object' || Array.isArray(v) || !('inputs' in v))
    .map((v) => json(JSON.stringify(v), ['invalid_body', 'unknown_field'])),
  // "inputs" of the wrong type, or nested junk in place of images.
  fc.jsonValue({ maxDepth: 4 }).filter((v) => !Array.isArray(v)).map((v) => json(JSON.stringify({ inputs: v }), ['inputs_not_array'])),
  fc.array(fc.jsonValue({ maxDepth: 3 }), { minLength: 1, maxLength: 5 })
    .filter((imgs) => !imgs.every((i) => Array.isArray(i) && i.length === PIXELS))
    .map((imgs) => json(JSON.stringify({ inputs: imgs }), ['invalid_image', 'invalid_image_length', 'invalid_pixel', 'pixel_out_of_range'], 'inputs[')),
  fc.constant(json('{"inputs":[]}', ['empty_batch'])),
  // Images of the wrong length, flat or nested.
  fc.integer({ min: 0, max: 2000 }).filter((n) => n !== PIXELS)
    .map((n) => json(JSON.stringify({ inputs: [Array(n).fill(0.5)] }), ['invalid_image_length'], 'inputs[0]')),
  fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 })).filter(([h, w]) => h !== 28 || w !== 28)
    .map(([h, w]) => json(JSON.stringify({ inputs: [Array.from({ length: h }, () => Array(w).fill(0.5))] }), ['invalid_image_length', 'invalid_image'], 'inputs[0]')),
  // A valid batch with one bad pixel somewhere: wrong type, NaN-ish string, huge or out-of-range number.
  fc.tuple(fc.array(image, { minLength: 1, maxLength: 3 }), fc.nat(), fc.nat({ max: PIXELS - 1 }), badPixel).map(([imgs, which, at, bad]) => {
    const i = which % imgs.length;
    const text = imgs.map((img, k) => `[${img.map((v, j) => (k === i && j === at ? bad : String(v))).join(',')}]`);
    return json(`{"inputs":[${text.join(',')}]}`, ['invalid_pixel', 'pixel_out_of_range', 'invalid_image', 'invalid_image_length'], `inputs[${i}]`);
  }),
  // A valid batch with a field too many, or more images than --max-batch (8).
  fc.tuple(image, fc.string({ minLength: 1, maxLength: 10 }).filter((k) => k !== 'inputs' && k !== '__proto__'))
    .map(([img, k]) => json(JSON.stringify({ inputs: [img], [k]: 1 }), ['unknown_field'])),
  fc.integer({ min: 9, max: 20 }).map((n) => json(JSON.stringify({ inputs: Array(n).fill(Array(PIXELS).fill(0)) }), ['batch_too_large'])),
);

const octet = (format?: string) => ({ 'Content-Type': 'application/octet-stream', ...(format ? { [HEADERS.pixelFormat]: format } : {}) });
const binaryCases: fc.Arbitrary<Case> = fc.oneof<fc.Arbitrary<Case>[]>(
  // uint8 of a size that is not a whole number of 784-byte images.
  fc.uint8Array({ minLength: 0, maxLength: 5000 }).filter((b) => b.length % PIXELS !== 0 || b.length === 0)
    .map((b): Case => ({ body: b, headers: octet(), codes: b.length === 0 ? ['empty_batch'] : ['invalid_binary_length'], mentions: b.length ? `${b.length} bytes` : undefined })),
  // float32 of the wrong size, or of the right size with a NaN, infinity or out-of-range value.
  fc.uint8Array({ minLength: 1, maxLength: 7000 }).filter((b) => b.length % (PIXELS * 4) !== 0)
    .map((b): Case => ({ body: b, headers: octet('float32'), codes: ['invalid_binary_length'], mentions: `${b.length} bytes` })),
  fc.tuple(fc.integer({ min: 1, max: 3 }), fc.nat(), fc.constantFrom(NaN, Infinity, -Infinity, -0.001, 1.5, 3.4e38, -3.4e38)).map(([n, at, bad]) => {
    const values = new Float32Array(n * PIXELS).fill(0.5);
    values[at % values.length] = bad;
    return { body: new Uint8Array(values.buffer), headers: octet('float32'), codes: ['invalid_pixel', 'pixel_out_of_range'], mentions: `image ${Math.floor((at % values.length) / PIXELS)}` } as Case;
  }),
  // An unknown pixel format, or a Content-Type the endpoint does not take (uint8 images of the right size).
  fc.tuple(fc.constantFrom('uint16', 'float64', 'png', 'UINT8 ', 'int8'), fc.integer({ min: 1, max: 3 }))
    .map(([f, n]): Case => ({ body: new Uint8Array(n * PIXELS), headers: octet(f), codes: f.trim().toLowerCase() === 'uint8' ? [] : ['invalid_pixel_format'], mentions: f.trim().slice(0, 5) })),
  fc.tuple(fc.constantFrom('text/plain', 'image/png', 'application/xml', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/x-www-form-urlencoded'), fc.integer({ min: 1, max: 3 }))
    .map(([type, n]): Case => ({ body: new Uint8Array(n * PIXELS), headers: { 'Content-Type': type }, codes: ['unsupported_media_type'] })),
).filter((c) => c.codes.length > 0);

async function refusedWithoutCharge(c: Case): Promise<void> {
  const before = ledgerTotal(victim.files.ledger, 'fuzz');
  const body = typeof c.body === 'string' ? c.body : (c.body as Uint8Array<ArrayBuffer>);
  const reply = await call(`${victim.url}/v1/label`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, ...c.headers }, body });
  const code = reply.body.error?.code as ApiErrorCode | undefined;
  const message = reply.body.error?.message ?? '';
  expect(reply.status, `5xx for ${JSON.stringify(reply.body)}`).toBeLessThan(500);
  expect(code && c.codes.includes(code), `${code} (${message}) is not one of ${c.codes.join(', ')}`).toBe(true);
  expect(reply.status).toBe(API_ERRORS[code!]);
  if (c.mentions) expect(message).toContain(c.mentions);
  expect(reply.body.labels).toBeUndefined();
  expect(ledgerTotal(victim.files.ledger, 'fuzz')).toBe(before);
}

describe('POST /v1/label body parsing, property-based (real victim over loopback)', () => {
  it('random malformed JSON bodies: a 4xx naming the fault, never a 5xx, nothing charged', async () => {
    await fc.assert(fc.asyncProperty(jsonCases, refusedWithoutCharge), { seed: 20261206, numRuns: 250 });
    expect(ledgerTotal(victim.files.ledger, 'fuzz')).toBe(0);
  });

  it('random malformed binary bodies and Content-Types: a 4xx naming the fault, never a 5xx, nothing charged', async () => {
    await fc.assert(fc.asyncProperty(binaryCases, refusedWithoutCharge), { seed: 20261207, numRuns: 150 });
    expect(ledgerTotal(victim.files.ledger, 'fuzz')).toBe(0);
  });
});

describe('the ledger this suite reads', () => {
  it('does record a valid request (so the no-charge checks above could fail)', async () => {
    const reply = await call(`${victim.url}/v1/label`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/octet-stream' }, body: new Uint8Array(PIXELS) });
    expect(reply.status).toBe(200);
    expect(ledgerTotal(victim.files.ledger, 'fuzz')).toBe(1);
  });
});
