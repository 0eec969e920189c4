/**
 * The oip and tfserving targets against minimal independent servers of their protocols
 * (test/protocol-servers.ts) over loopback: the labels are the served model's, the images paid for
 * are what the server counted, a resumed run pays nothing twice, a 429's Retry-After is waited for,
 * a wrong shape, output name or threat model is refused before the first paid query, and in a
 * label-only campaign no score reaches answers.jsonl.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_CACHE_FILE } from '../adversary/oracle/answer-cache.js';
import { fileRunStore } from '../adversary/run/store.js';
import { createTargetOracle, type TargetOracleOptions } from '../adversary/targets/oracle.js';
import { planInput } from '../adversary/targets/tensors.js';
import { createRng } from '../shared/random.js';
import { C, CLASSES, H, W, oipServer, tfServingServer, tinyModel, type ProtocolServer } from './protocol-servers.js';

const PIXELS = H * W * C;
const fast = { baseDelayMs: 5, maxDelayMs: 20, windowMs: 5000 };
const dirs: string[] = [];
const folder = () => {
  const d = mkdtempSync(join(tmpdir(), 'targets-'));
  dirs.push(d);
  return d;
};

/** `count` seeded images on the 8-bit grid (so quantisation changes nothing), with the first `repeats` repeated at the end. */
function images(count: number, seed: number, repeats = 0): Float32Array {
  const rnd = createRng(seed);
  const out = new Float32Array((count + repeats) * PIXELS);
  for (let i = 0; i < count * PIXELS; i++) out[i] = Math.round(rnd() * 255) / 255;
  out.copyWithin(count * PIXELS, 0, repeats * PIXELS);
  return out;
}

/** The model's own labels and probabilities of HWC images, computed here without any target code. */
function expected(model: tf.Sequential, x: Float32Array, n: number, nchw: boolean): { labels: number[]; probs: number[] } {
  return tf.tidy(() => {
    const hwc = tf.tensor4d(x.subarray(0, n * PIXELS), [n, H, W, C]);
    const p = model.predict(nchw ? hwc.transpose([0, 3, 1, 2]) : hwc) as tf.Tensor2D;
    return { labels: Array.from(p.argMax(1).dataSync()), probs: Array.from(p.dataSync()) };
  });
}

const answersOf = (dir: string) => readFileSync(join(dir, ANSWER_CACHE_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
const refusal = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a refusal'); }, (e: Error & { code?: string }) => e);

let nchwModel: tf.Sequential, nhwcModel: tf.Sequential;
const servers: ProtocolServer[] = [];
const start = async (s: Promise<ProtocolServer>) => {
  const server = await s;
  servers.push(server);
  return server;
};

beforeAll(async () => {
  await tf.setBackend('cpu');
  nchwModel = tinyModel(true);
  nhwcModel = tinyModel(false);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('oip target (Open Inference Protocol v2, NCHW FP32)', () => {
  const opts = (url: string, extra: Partial<TargetOracleOptions> = {}): TargetOracleOptions => ({ url, target: { target: 'oip', modelName: 'digits', maxBatch: 8 }, retries: fast, random: () => 0.5, ...extra });

  it("labels are the served model's, the paid images the server's count, and resuming pays nothing", async () => {
    const server = await start(oipServer('digits', nchwModel));
    const dir = folder();
    const x = images(20, 1, 5);
    const oracle = await createTargetOracle(opts(server.url, { store: fileRunStore(dir) }));
    expect(await oracle.info()).toMatchObject({ inputShape: [H, W, C], classes: CLASSES, maxBatch: 8, output: 'scores' });
    expect(oracle.scores).toBeUndefined(); // label threat: no scores for the attack code
    const labels = Array.from(await oracle.label(x, 25, 'attack'));
    const want = expected(nchwModel, x, 20, true).labels;
    expect(labels).toEqual([...want, ...want.slice(0, 5)]);
    expect(new Set(want).size).toBeGreaterThan(1); // the labels say something
    expect(server.images).toBe(20);
    expect(oracle.counts()).toEqual({ attack: 20, measurement: 0, cached: 5 });
    expect(server.requests.filter((r) => r.startsWith('POST')).length).toBe(3); // 20 new images, at most 8 a request
    await oracle.close();
    // The label-only reduction: answers.jsonl holds labels, never the server's probabilities.
    expect(answersOf(dir).every((a) => a.s === undefined && Object.keys(a).sort().join() === 'h,l,p')).toBe(true);

    const again = await createTargetOracle(opts(server.url, { store: fileRunStore(dir) }));
    expect(Array.from(await again.label(x, 20, 'measurement'))).toEqual(want);
    expect(server.images).toBe(20);
    expect(again.counts()).toEqual({ attack: 0, measurement: 0, cached: 20 });
    expect(again.priorCounts()).toEqual({ attack: 20, measurement: 0 });
    await again.close();
  });

  it("waits out a 429 for its Retry-After, and the images are paid once", async () => {
    const server = await start(oipServer('digits', nchwModel, { tooMany: { times: 1, retryAfter: 1 } }));
    const oracle = await createTargetOracle(opts(server.url));
    const t0 = Date.now();
    const labels = Array.from(await oracle.label(images(4, 2), 4, 'attack'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(labels).toEqual(expected(nchwModel, images(4, 2), 4, true).labels);
    expect(server.images).toBe(4);
    await oracle.close();
  });

  it('refuses a wrong input shape, a wrong output name, a missing token and a threat the endpoint cannot meet, before the first paid query', async () => {
    const server = await start(oipServer('digits', nchwModel));
    const shape = await refusal(createTargetOracle(opts(server.url, { target: { target: 'oip', modelName: 'digits', inputShape: '5,5,1' } })));
    expect(shape.code).toBe('target_bad_shape');
    expect(shape.message).toMatch(new RegExp(`oip target at ${server.url}/v2/models/digits.*\\[-1, 1, 6, 6\\].*--input-shape 5,5,1`));
    const output = await refusal(createTargetOracle(opts(server.url, { target: { target: 'oip', modelName: 'digits', outputName: 'logits' } })));
    expect(output.code).toBe('target_bad_output');
    expect(output.message).toContain('no output named logits (it has probabilities)');
    const missing = await refusal(createTargetOracle(opts(server.url, { target: { target: 'oip', modelName: 'mnist' } })));
    expect(missing.code).toBe('target_not_found');
    expect(missing.message).toContain(`GET ${server.url}/v2/models/mnist`);

    const labelsOnly = await start(oipServer('digits', nchwModel, { labelsOnly: true, outputName: 'label' }));
    const threat = await refusal(createTargetOracle(opts(labelsOnly.url, { target: { target: 'oip', modelName: 'digits', classes: CLASSES }, threat: 'scores' })));
    expect(threat.code).toBe('threat_unavailable');
    expect(threat.message).toContain('answers "label"');

    const locked = await start(oipServer('digits', nchwModel, { token: 's3cret' }));
    const unauthorized = await refusal(createTargetOracle(opts(locked.url)));
    expect(unauthorized.code).toBe('target_unauthorized');
    expect(unauthorized.message).toMatch(/HTTP 401.*it sent no Authorization header/);
    const wrongKey = await refusal(createTargetOracle(opts(locked.url, { apiKey: 'guess' })));
    expect(wrongKey.message).toContain('it sent the header Authorization (from --api-key)');
    expect(wrongKey.message).not.toContain('guess');
    for (const s of [server, labelsOnly, locked]) expect(s.images).toBe(0);
    expect([server, labelsOnly, locked].flatMap((s) => s.requests).filter((r) => r.startsWith('POST'))).toEqual([]);

    // A labels-only output ([N] integers) is read as the labels themselves.
    const ok = await createTargetOracle(opts(labelsOnly.url, { target: { target: 'oip', modelName: 'digits', classes: CLASSES } }));
    expect(Array.from(await ok.label(images(6, 3), 6, 'attack'))).toEqual(expected(nchwModel, images(6, 3), 6, true).labels);
    await ok.close();
  });
});

describe('tfserving target (REST predict, softmax outputs)', () => {
  const opts = (url: string, extra: Partial<TargetOracleOptions> = {}): TargetOracleOptions => ({ url, target: { target: 'tfserving', modelName: 'digits' }, retries: fast, random: () => 0.5, ...extra });

  it("labels are the model's; a scores threat gets its probabilities, cached with the label and free on resume", async () => {
    const server = await start(tfServingServer('digits', nhwcModel));
    const x = images(12, 4);
    const want = expected(nhwcModel, x, 12, false);
    const labelOnly = folder();
    const plain = await createTargetOracle(opts(server.url, { store: fileRunStore(labelOnly) }));
    expect(await plain.info()).toMatchObject({ inputShape: [H, W, C], classes: CLASSES, maxBatch: 100, output: 'scores' });
    expect(Array.from(await plain.label(x, 12, 'attack'))).toEqual(want.labels);
    await plain.close();
    expect(answersOf(labelOnly).some((a) => 's' in a)).toBe(false);
    expect(server.images).toBe(12);

    const dir = folder();
    const scored = await createTargetOracle(opts(server.url, { store: fileRunStore(dir), threat: 'scores' }));
    const probs = Array.from(await scored.scores!(x, 12, 'measurement'));
    probs.forEach((p, i) => expect(p).toBeCloseTo(want.probs[i], 5));
    expect(Array.from(await scored.label(x, 12, 'measurement'))).toEqual(want.labels); // from the cache
    expect(server.images).toBe(24);
    await scored.close();
    expect(answersOf(dir).every((a) => Array.isArray(a.s) && (a.s as number[]).length === CLASSES)).toBe(true);

    const resumed = await createTargetOracle(opts(server.url, { store: fileRunStore(dir), threat: 'scores' }));
    const again = Array.from(await resumed.scores!(x, 12, 'measurement'));
    again.forEach((p, i) => expect(p).toBeCloseTo(want.probs[i], 5));
    expect(server.images).toBe(24);
    await resumed.close();
  });

  it('refuses a wrong output name and a wrong shape before the first paid query', async () => {
    const server = await start(tfServingServer('digits', nhwcModel));
    const output = await refusal(createTargetOracle(opts(server.url, { target: { target: 'tfserving', modelName: 'digits', outputName: 'scores' } })));
    expect(output.code).toBe('target_bad_output');
    expect(output.message).toContain('no output named scores (it has probs)');
    const shape = await refusal(createTargetOracle(opts(server.url, { target: { target: 'tfserving', modelName: 'digits', layout: 'nchw' } })));
    expect(shape.code).toBe('target_bad_shape');
    expect(shape.message).toContain('looks NHWC, not --layout nchw');
    const size = await refusal(createTargetOracle(opts(server.url, { target: { target: 'tfserving', modelName: 'digits', inputShape: '28,28,1' } })));
    expect(size.message).toContain('is NHWC [6, 6, 1] per image, not --input-shape 28,28,1');
    expect(server.requests.filter((r) => r.startsWith('POST'))).toEqual([]);
  });
});

describe('input layouts from the declared shape', () => {
  it('tells NHWC from NCHW by the channels, and asks for --layout when it cannot', () => {
    expect(planInput([-1, 28, 28, 1], {}, 'x')).toMatchObject({ shape: [28, 28, 1], layout: 'nhwc' });
    expect(planInput([-1, 3, 32, 32], {}, 'x')).toMatchObject({ shape: [32, 32, 3], layout: 'nchw', dims: [3, 32, 32] });
    expect(planInput([-1, 28, 28], {}, 'x')).toMatchObject({ shape: [28, 28, 1] });
    expect(planInput([8, 784], { inputShape: '28,28,1' }, 'x')).toMatchObject({ shape: [28, 28, 1], batch: 8, dims: [784] });
    expect(() => planInput([-1, 3, 3, 3], {}, 'x')).toThrow(/could be NHWC or NCHW; say which with --layout/);
    expect(planInput([-1, 3, 3, 3], { layout: 'nchw' }, 'x')).toMatchObject({ layout: 'nchw' });
    expect(() => planInput([-1, 784], {}, 'x')).toThrow(/flat vector; give the image's --input-shape/);
    expect(() => planInput([-1, -1, -1, 3], {}, 'x')).toThrow(/leaves image sizes open/);
  });
});
