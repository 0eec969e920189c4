/**
 * Detector action `reject` on every paid route, through the target layer: one victim process serving
 * /v1/label, /v1/predict, the Open Inference Protocol and TF Serving (each a face over the one paid
 * pipeline) with Blacklight rejecting. Through each target, with rejectAsAnswer, a near-duplicate of an
 * image already asked is answered REJECTED, counted as refused, and not charged; the first is charged.
 * Sybil keys go through the transferlab target only: another kind refuses them before anything is sent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REJECTED } from '../adversary/oracle/core.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import type { TargetSettingsInput } from '../adversary/targets/settings.js';
import type { Threat } from '../shared/protocol/output.js';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import type { VictimProcess } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, call, startKeyedVictim } from './victim-client.js';

const ROUTES: { name: string; target: TargetSettingsInput; threat: Threat }[] = [
  { name: 'label', target: { target: 'transferlab' }, threat: 'label' },
  { name: 'predict', target: { target: 'transferlab' }, threat: 'scores' },
  { name: 'oip', target: { target: 'oip', modelName: 'model' }, threat: 'label' },
  { name: 'tfserving', target: { target: 'tfserving', modelName: 'model' }, threat: 'label' },
];
const KEYS = ROUTES.map((r) => ({ id: r.name, key: `reject-${r.name}-0123456789`, budget: 1_000 }));

let victim: VictimProcess;
let dir: string;
let clean: Float32Array;

const used = async (key: string) => ((await call(`${victim.url}/v1/budget`, { headers: bearer(key) })).body as unknown as { used: number }).used;

beforeAll(async () => {
  const model = await ensureTestVictim();
  await initBackend();
  clean = Float32Array.from(loadMnist('test').pixels.subarray(0, ROUTES.length * IMAGE_SIZE), (v) => v / 255);
  dir = mkdtempSync(join(tmpdir(), 'reject-routes-'));
  victim = await startKeyedVictim({
    dir, model, keys: KEYS, rateLimit: 1000, timeoutMs: 120_000,
    args: ['--protocol', 'transferlab,oip,tfserving', '--model-name', 'model', '--output', 'scores', '--detector', 'blacklight', '--detector-action', 'reject'],
  });
}, 180_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('detector action reject on every paid route', () => {
  it.each(ROUTES.map((r, i) => [r.name, i] as const))('%s: a near-duplicate is refused as REJECTED and not charged', async (_name, i) => {
    const { target, threat } = ROUTES[i];
    const oracle = await createTargetOracle({ url: victim.url, apiKey: KEYS[i].key, target, threat, rejectAsAnswer: true, requestSize: 1 });
    try {
      const first = clean.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
      const twin = first.slice();
      // Three pixels moved one level: a boundary search's kind of probe, a new image for the cache.
      for (let k = 0; k < 3; k++) {
        const p = (i * 131 + k * 37) % IMAGE_SIZE;
        twin[p] += twin[p] < 1 ? 1 / 255 : -1 / 255;
      }
      const labels = await oracle.label(first, 1, 'attack');
      expect(labels[0]).toBeGreaterThanOrEqual(0);
      const again = await oracle.label(twin, 1, 'attack');
      expect(again[0]).toBe(REJECTED);
      expect(oracle.rejections()).toEqual({ flagged: 1, refused: 1, requests: 1 });
      expect(oracle.counts().attack).toBe(1);
      expect(await used(KEYS[i].key)).toBe(1); // the victim charged the first image only
    } finally {
      await oracle.close();
    }
  });

  it('Sybil keys are refused for a target that cannot spread requests over keys, before anything is sent', async () => {
    const keys = [KEYS[2].key, KEYS[3].key];
    const before = await Promise.all(keys.map(used));
    const err = await createTargetOracle({ url: victim.url, apiKeys: keys, target: { target: 'oip', modelName: 'model' } }).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('invalid_config');
    expect(err?.message).toMatch(/Sybil keys .* not supported by the oip target/);
    expect(await Promise.all(keys.map(used))).toEqual(before);
  });
});
