/**
 * The torchserve target against a TorchServe-shaped server written here: PNG bodies, one image per
 * request, top-k `{name: probability}` answers, an inference token. Also where the client's own limits
 * are checked against a server's count and clock: --budget, the concurrency limit, --rps.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OracleLimits } from '../adversary/oracle/limits.js';
import { fileRunStore } from '../adversary/run/store.js';
import { createTargetOracle, type TargetOracle } from '../adversary/targets/oracle.js';
import type { Threat } from '../shared/protocol/output.js';
import { images, json, NAMES, SHAPE, startServer, tinyModel } from './tiny-model-server.js';

const TOKEN = 'inference-token-1';
let model: Awaited<ReturnType<typeof tinyModel>>;
let server: Awaited<ReturnType<typeof startServer>>;

beforeAll(async () => {
  model = await tinyModel();
  server = await startServer((req, body, res, log) => {
    if (req.method === 'GET' && req.url === '/ping') return json(res, 200, { status: 'Healthy' });
    if (req.method !== 'POST' || req.url !== '/predictions/digits/2.0') return json(res, 404, { code: 404, type: 'ModelNotFoundException', message: `Model not found: ${req.url}` });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(res, 401, { code: 401, type: 'InvalidKeyException', message: 'Token Authorization failed. Token either incorrect, expired, or not provided correctly' });
    const png = PNG.sync.read(body);
    if (png.width !== SHAPE[1] || png.height !== SHAPE[0]) return json(res, 400, { message: 'wrong size' });
    const pixels = Float32Array.from({ length: 16 }, (_, p) => png.data[p * 4] / 255);
    log.images++;
    const [p] = model.probs(pixels, 1);
    // The image classifier's answer: its top classes by name (index_to_name.json), best first.
    const top = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 3);
    json(res, 200, Object.fromEntries(top.map((k) => [NAMES[k], p[k]])));
  }, 10);
});
afterAll(() => server?.close());

function oracle(dir: string, o: { token?: string; limits?: OracleLimits; threat?: Threat; targetOutput?: string } = {}): Promise<TargetOracle> {
  return createTargetOracle({
    url: server.url,
    threat: o.threat,
    target: { target: 'torchserve', modelName: 'digits', modelVersion: '2.0', token: o.token ?? TOKEN, inputShape: SHAPE.join(','), classNames: NAMES, targetOutput: o.targetOutput, ...o.limits },
    store: fileRunStore(dir),
    retries: { maxAttempts: 2, baseDelayMs: 1 },
  });
}
const folder = () => mkdtempSync(join(tmpdir(), 'tl-torchserve-'));

describe('torchserve target', () => {
  it("labels PNG images as the model does, counts what the server counts, and a resumed run pays nothing again", async () => {
    const dir = folder();
    const x = images(12, 1);
    x.copyWithin(11 * 16, 0, 16); // the last image repeats the first: answered once
    const before = server.log.images;
    const o1 = await oracle(dir, { limits: { concurrency: 3 } });
    const got = await o1.label(x, 12, 'attack');
    expect([...got]).toEqual(model.labels(x, 12));
    expect(o1.counts()).toEqual({ attack: 11, measurement: 0, cached: 1 });
    expect(server.log.images - before).toBe(11);
    expect(server.log.maxInFlight).toBeLessThanOrEqual(3);
    expect(server.log.maxInFlight).toBeGreaterThan(1); // the batches did overlap
    await o1.close();
    const o2 = await oracle(dir);
    expect([...(await o2.label(x, 12, 'measurement'))]).toEqual([...got]);
    expect(o2.counts()).toEqual({ attack: 0, measurement: 0, cached: 12 });
    expect(server.log.images - before).toBe(11);
    await o2.close();
  });

  it("--target-output declares the handler's top-k; a threat it does not cover is refused before any query, an answer short of it after, counted", async () => {
    const before = server.log.images;
    // Undeclared, the handler's output is taken as labels: a topk threat is refused, saying how to declare it.
    await expect(oracle(folder(), { threat: 'topk' })).rejects.toMatchObject({ code: 'threat_unavailable', message: expect.stringMatching(/answers "label".*--target-output/) });
    await expect(oracle(folder(), { threat: 'scores', targetOutput: 'topk:3' })).rejects.toMatchObject({ code: 'threat_unavailable', message: expect.stringMatching(/answers "topk:3"/) });
    expect(server.log.images).toBe(before);
    // Declared topk:3 (the handler's top 3 of 4): the scores of those 3 reach a topk campaign.
    const o = await oracle(folder(), { threat: 'topk', targetOutput: 'topk:3' });
    const x = images(3, 5);
    const scores = await o.scores!(x, 3, 'attack');
    expect(Array.from(scores).filter((v) => !Number.isNaN(v))).toHaveLength(9);
    await o.close();
    // Declared scores (every class) but the answer names 3 of 4: the run stops at that answer, paid and counted.
    const dir = folder();
    const wrong = await oracle(dir, { threat: 'scores', targetOutput: 'scores' });
    await expect(wrong.scores!(images(2, 6), 2, 'attack')).rejects.toMatchObject({ code: 'threat_unavailable', message: expect.stringMatching(/scores for 3 of 4 classes.*"scores"/) });
    // One image a request: the first answer stopped the run, the second image was never sent.
    expect(wrong.counts().attack).toBe(1);
    expect(server.log.images - before).toBe(3 + 1);
    await wrong.close();
    // Its label was kept: a label campaign on the same folder pays only for the image never sent.
    const labels = await oracle(dir);
    await labels.label(images(2, 6), 2, 'attack');
    expect(labels.counts()).toMatchObject({ attack: 1, cached: 1 });
    await labels.close();
    await expect(createTargetOracle({ url: server.url, target: { target: 'oip', targetOutput: 'scores' } })).rejects.toThrow(/--target-output applies to torchserve only/);
  });

  it('a wrong token is a clear 401 naming the header it sent, and nothing is cached or counted', async () => {
    const o = await oracle(folder(), { token: 'wrong' });
    const before = server.log.images;
    await expect(o.label(images(2, 2), 2, 'attack')).rejects.toThrow(/torchserve target refused POST http:\/\/127\.0\.0\.1:\d+\/predictions\/digits\/2\.0 \(HTTP 401\); it sent the header Authorization \(from --token\).*Token Authorization failed/);
    expect(o.counts()).toEqual({ attack: 0, measurement: 0, cached: 0 });
    expect(server.log.images).toBe(before);
    await o.close();
  });

  it('--budget refuses a call that would go over before sending it, and a larger budget resumes from the cache', async () => {
    const dir = folder();
    const x = images(8, 3);
    const before = server.log.images;
    const o1 = await oracle(dir, { limits: { budget: 5 } });
    expect(await o1.budget()).toEqual({ used: 0, limit: 5 });
    await expect(o1.label(x, 8, 'attack')).rejects.toMatchObject({ code: 'budget_exhausted', message: expect.stringMatching(/needs 8 new image\(s\) but --budget 5 leaves 5.*nothing was sent/) });
    expect(server.log.images).toBe(before);
    await o1.label(x, 5, 'attack');
    expect(server.log.images - before).toBe(5);
    await expect(o1.label(x, 6, 'attack')).rejects.toMatchObject({ code: 'budget_exhausted' });
    expect(server.log.images - before).toBe(5);
    await o1.close();
    // Resumed with the same budget: what was paid is answered free, the rest still refused.
    const o2 = await oracle(dir, { limits: { budget: 5 } });
    await o2.label(x, 5, 'attack');
    await expect(o2.label(x, 8, 'attack')).rejects.toMatchObject({ code: 'budget_exhausted', message: expect.stringMatching(/paid for 5/) });
    await o2.close();
    const o3 = await oracle(dir, { limits: { budget: 8 } });
    expect([...(await o3.label(x, 8, 'attack'))]).toEqual(model.labels(x, 8));
    expect(server.log.images - before).toBe(8);
    expect(o3.counts()).toEqual({ attack: 3, measurement: 0, cached: 5 });
    await o3.close();
  });

  it('--rps spaces the requests the server sees', async () => {
    const o = await oracle(folder(), { limits: { rps: 25, concurrency: 4 } });
    const first = server.log.starts.length;
    await o.label(images(8, 4), 8, 'attack');
    const starts = server.log.starts.slice(first);
    expect(starts).toHaveLength(8);
    // 40 ms apart on the client; the server's clock sees them loosely so: a request delayed in transit
    // may arrive just before the next, but no window holds more than its share plus one.
    expect(starts[7] - starts[0]).toBeGreaterThanOrEqual(6 * 40 * 0.85);
    for (let i = 0; i < 8; i++) for (let j = i + 2; j < 8; j++) expect(starts[j] - starts[i], `requests ${i}..${j}: ${starts.map((t) => Math.round(t - starts[0])).join(' ')}`).toBeGreaterThanOrEqual((j - i - 1) * 40 * 0.85);
    await o.close();
  });
});
