import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { stoppedMessage } from '../adversary/commands.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { initBackend } from '../shared/engine/backend.js';
import type { TransferlabError } from '../shared/errors.js';
import { IMAGE_SIZE, imagesTensor, loadMnist } from '../shared/datasets/index.js';
import { fromLayers, predictLabels } from '../shared/model/model.js';
import { loadModel } from '../shared/model/model-io.js';
import { createApp } from '../victim/http/app.js';
import { MemoryAuditLog, type AuditEntry, type AuditEvent } from '../victim/store/audit.js';
import { modelLabeler } from '../victim/http/batcher.js';
import { ExtractionWatch, type DetectorView } from '../victim/detect/detection.js';
import { detectorSet } from '../victim/detect/detectors.js';
import { KeyRing } from '../victim/store/keys.js';
import { BudgetBook } from '../victim/store/ledger.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { startServer } from '../victim/http/server.js';
import { ensureTestVictim } from './fixtures.js';
import { papernotStream, streamPixels, type QueryStream } from '../scripts/papernot-stream.js';
import { bearer, call, labelUint8, ledgerTotal, readJsonl, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * Extraction detection and idempotent replays on a real victim process (--detector prada
 * --detector-action block): the attacker is refused after detection with nothing charged, the block
 * survives a restart until the operator lifts it, and a campaign against it stops resumably.
 */
const KEYS = { mallory: 'mallory-0123456789abcdef', bob: 'bob-0123456789abcdef', alice: 'alice-0123456789abcdef', eve: 'eve-0123456789abcdef' };
const ADMIN = 'admin-secret-0123456789abcdef';
let dir: string;
let modelDir: string;
let backend: string;
let victim: KeyedVictim;
let attack: QueryStream;

const start = () =>
  startKeyedVictim({
    dir, model: modelDir, backend, keys: KEYS, budget: 100_000, rateLimit: 100_000,
    args: ['--detector', 'prada', '--detector-action', 'block', '--admin-key-file', join(dir, 'admin.key')],
  });
const admin = (key = ADMIN) => call(`${victim.url}/v1/admin/detections`, { headers: bearer(key) });

beforeAll(async () => {
  modelDir = await ensureTestVictim();
  backend = (await initBackend()).backend;
  const { model } = await loadModel(modelDir);
  attack = papernotStream(fromLayers(model), { seedSize: 150, rounds: 2 });
  model.dispose();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-detector-'));
  writeFileSync(join(dir, 'admin.key'), `${ADMIN}\n`);
  victim = await start();
});

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('extraction detection, block mode, over HTTP', () => {
  let answered = 0;

  it('answers the attacker normally until it is flagged, then refuses it (403) and charges nothing', async () => {
    let refused: Awaited<ReturnType<typeof labelUint8>> | undefined;
    for (let at = 0; at < attack.count && !refused; at += 50) {
      const r = await labelUint8(victim.url, streamPixels(attack, at, 50), bearer(KEYS.mallory));
      if (r.status === 200) answered += 50;
      else refused = r;
    }
    expect(refused?.status).toBe(403);
    expect(refused?.body.error?.code).toBe('extraction_suspected');
    expect(answered).toBeGreaterThan(150); // the seed set of natural images went through
    expect(answered).toBeLessThanOrEqual(300); // flagged within the first augmentation round
    const again = await labelUint8(victim.url, streamPixels(attack, 0, 1), bearer(KEYS.mallory));
    expect(again.status).toBe(403);
    expect(ledgerTotal(victim.files.ledger, 'mallory')).toBe(answered);

    const events = readJsonl<AuditEvent>(victim.files.audit).filter((e) => e.event === 'extraction_suspected');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ keyId: 'mallory', client: 'mallory', action: 'block' });
    expect(events[0].w!).toBeLessThan(0.9);
    expect(events[0].queries!).toBeLessThanOrEqual(answered);
    const refusals = readJsonl<AuditEntry>(victim.files.audit).filter((e) => e.keyId === 'mallory' && e.outcome === 'rejected');
    expect(refusals.map((e) => [e.status, e.code])).toEqual([[403, 'extraction_suspected'], [403, 'extraction_suspected']]);
  });

  it('keeps serving a benign client, and shows detections only to the admin key', async () => {
    const test = loadMnist('test');
    const r = await labelUint8(victim.url, test.pixels.subarray(0, 500 * IMAGE_SIZE), bearer(KEYS.bob));
    expect(r.status).toBe(200);
    expect((await admin(KEYS.mallory)).status).toBe(401);
    expect((await call(`${victim.url}/v1/admin/detections`)).status).toBe(401);
    const view = (await admin()).body as unknown as DetectorView;
    expect(view.detector).toMatchObject({ kind: 'prada', delta: 0.9, action: 'block' });
    expect(view.detections.map((d) => d.client)).toEqual(['mallory']);
    expect(view.clients.find((c) => c.clientId === 'bob')).toMatchObject({ queries: 500, flagged: false });
  });

  it('keeps the block across a restart until the operator lifts it', async () => {
    expect(await victim.stop()).toBe(0);
    victim = await start();
    expect(victim.output()).toMatch(/extraction detector: PRADA.*\(1 client\(s\) flagged earlier\)/);
    expect((await labelUint8(victim.url, streamPixels(attack, 0, 1), bearer(KEYS.mallory))).status).toBe(403);
    const lift = await call(`${victim.url}/v1/admin/detections/mallory`, { method: 'DELETE', headers: bearer(ADMIN) });
    expect(lift.status).toBe(200);
    expect((await call(`${victim.url}/v1/admin/detections/mallory`, { method: 'DELETE', headers: bearer(ADMIN) })).status).toBe(404);
    expect((await labelUint8(victim.url, streamPixels(attack, 0, 1), bearer(KEYS.mallory))).status).toBe(200);
    expect(readJsonl<AuditEvent>(victim.files.audit).filter((e) => e.event === 'block_lifted').map((e) => e.client)).toEqual(['mallory']);
  });
});

describe('Idempotency-Key over HTTP', () => {
  it('replays a charged answer without charging again; refuses the key with another body', async () => {
    const test = loadMnist('test');
    const body = test.pixels.subarray(1000 * IMAGE_SIZE, 1010 * IMAGE_SIZE);
    const key = createHash('sha256').update(body).digest('hex');
    const first = await labelUint8(victim.url, body, { ...bearer(KEYS.alice), 'Idempotency-Key': key });
    const repeat = await labelUint8(victim.url, body, { ...bearer(KEYS.alice), 'Idempotency-Key': key });
    expect(first.status).toBe(200);
    expect(repeat.status).toBe(200);
    expect(repeat.body.labels).toEqual(first.body.labels);
    expect(repeat.body.budget).toEqual({ used: 10, limit: 100_000 });
    expect([first.headers.get('idempotent-replayed'), repeat.headers.get('idempotent-replayed')]).toEqual([null, 'true']);
    expect(ledgerTotal(victim.files.ledger, 'alice')).toBe(10);
    const other = await labelUint8(victim.url, test.pixels.subarray(0, 10 * IMAGE_SIZE), { ...bearer(KEYS.alice), 'Idempotency-Key': key });
    expect([other.status, other.body.error?.code]).toEqual([422, 'idempotency_key_reused']);
    const bad = await labelUint8(victim.url, body, { ...bearer(KEYS.alice), 'Idempotency-Key': 'two words' });
    expect([bad.status, bad.body.error?.code]).toEqual([400, 'invalid_idempotency_key']);
    const outcomes = readJsonl<AuditEntry>(victim.files.audit).filter((e) => e.keyId === 'alice').map((e) => e.outcome);
    expect(outcomes).toEqual(['answered', 'replayed', 'rejected', 'rejected']);
    expect(ledgerTotal(victim.files.ledger, 'alice')).toBe(10);
  });
});

describe('a campaign against a blocking victim', () => {
  it('stops with extraction_suspected and keeps its checkpoints for a resume', async () => {
    const out = join(dir, 'campaign');
    const config = resolveConfig({
      victim: victim.url, seed: 1, seedSize: 150, evalSize: 200, rounds: 3, epochs: 3, substitute: 'papernot-mlp',
      epsilons: [0.3], boundary: { enabled: false },
    });
    const oracle = await createHttpOracle({ url: victim.url, apiKey: KEYS.eve, cacheDir: out });
    const error = await runCampaign(config, out, oracle, { log: () => {} }).then(
      () => null,
      (e: unknown) => e as TransferlabError,
    );
    await oracle.close();
    expect(error?.code).toBe('extraction_suspected');
    expect(existsSync(join(out, 'checkpoints', 'round-01', 'round.json'))).toBe(true);
    const message = stoppedMessage(error!, out);
    expect(message).toMatch(/flagged this key as an extraction attack/);
    expect(message).toContain(`--resume ${out} --api-key KEY`);
    // Everything the campaign was answered was charged once; the refusal charged nothing.
    expect(ledgerTotal(victim.files.ledger, 'eve')).toBe(200 + 150 + 150);
  });
});

describe('log mode', () => {
  it('leaves the watched client\'s answers unchanged and tells it nothing', async () => {
    const { model } = await loadModel(modelDir);
    const net = fromLayers(model);
    const audit = new MemoryAuditLog();
    const watch = new ExtractionWatch(detectorSet({ prada: new PradaDetector() }), 'log', audit);
    const app = createApp({
      label: async (images, count) => modelLabeler(net)(images, count),
      keys: new KeyRing([{ id: 'mallory', key: KEYS.mallory }]),
      budgets: new BudgetBook({ append: async () => {} }),
      audit,
      maxBatch: 1000,
      rateLimit: 0,
      watch,
    });
    const server = await startServer(app, '127.0.0.1', 0);
    try {
      const x = imagesTensor(attack.images, attack.count);
      const expected = Array.from(predictLabels(net, x));
      x.dispose();
      const got: number[] = [];
      for (let at = 0; at < attack.count; at += 50) {
        const r = await labelUint8(server.url, streamPixels(attack, at, 50), bearer(KEYS.mallory));
        expect(r.status).toBe(200);
        expect(Object.keys(r.body).sort()).toEqual(['budget', 'labels']);
        got.push(...(r.body.labels ?? []));
      }
      expect(got).toEqual(expected);
      expect(audit.events).toHaveLength(1);
      expect(audit.events[0]).toMatchObject({ event: 'extraction_suspected', keyId: 'mallory', action: 'log' });
      expect(audit.entries.every((e) => e.outcome === 'answered')).toBe(true);
    } finally {
      await server.close();
      model.dispose();
    }
  });
});
