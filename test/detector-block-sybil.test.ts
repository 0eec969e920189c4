import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { QueryAttackResults } from '../adversary/query/run.js';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import type { DetectorView } from '../victim/detect/detection.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, call, labelUint8, startKeyedVictim, type TestVictim } from './victim-client.js';

/**
 * A Sybil query attack against a victim that blocks flagged keys (Blacklight, one global store,
 * action block): a blocked key is dropped and its request goes to the next live key, nothing is
 * charged to a blocked key, and once every key is blocked the run ends with what it had found
 * (results.json stopped: key_blocked) instead of failing.
 */
const KEYS = Array.from({ length: 4 }, (_, k) => ({ id: `k${k}`, key: `sybil-${k}-0123456789abcdef` }));
const ADMIN = 'admin-0123456789abcdef0123';
let dir: string;
let victim: TestVictim;

const clean = loadMnist('test').pixels;
/** The test image `i` with `n` pixels nudged by one level: a near-duplicate, as a search's probes are. */
const nudged = (i: number, n: number, seed: number) => {
  const out = clean.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
  for (let k = 0; k < n; k++) {
    const p = (seed * 131 + k * 37) % IMAGE_SIZE;
    out[p] = out[p] < 255 ? out[p] + 1 : 254;
  }
  return out;
};
const used = async (key: string) => ((await call(`${victim.url}/v1/budget`, { headers: bearer(key) })).body as unknown as { used: number }).used;

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-block-sybil-'));
  writeFileSync(join(dir, 'admin.key'), `${ADMIN}\n`);
  victim = await startKeyedVictim({
    dir, model: modelDir, backend, keys: KEYS, budget: 100_000, rateLimit: 100_000,
    args: ['--admin-key-file', join(dir, 'admin.key'), '--detector', 'blacklight', '--blacklight-scope', 'global', '--detector-action', 'block'],
  });
}, 300_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Sybil query attack against action block', () => {
  it('drops each key the victim blocks, pays nothing on a blocked key, and ends with its findings once every key is blocked', async () => {
    // Key 0 is blocked before the attack starts: an image and three near-copies of it (3 matches).
    for (let s = 0; s < 4; s++) await labelUint8(victim.url, s === 0 ? clean.slice(0, IMAGE_SIZE) : nudged(0, 2, s), bearer(KEYS[0].key));
    expect((await labelUint8(victim.url, clean.slice(IMAGE_SIZE, 2 * IMAGE_SIZE), bearer(KEYS[0].key))).body.error?.code).toBe('extraction_suspected');
    const before = await Promise.all(KEYS.map((k) => used(k.key)));

    writeFileSync(join(dir, 'sybil.txt'), KEYS.map((k) => k.key).join('\n'));
    const out = join(dir, 'run');
    const code = await runQueryAttackCommand({ victim: victim.url, keysFile: join(dir, 'sybil.txt'), requestSize: 1, images: 2, queriesPerImage: 300, seedSize: 10, seed: 3, out }, () => out);
    expect(code).toBe(0);

    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as QueryAttackResults;
    expect(r.stopped).toBe('key_blocked');
    expect(r.partial).toBeNull();
    expect(r.images).toBe(2); // a block is the attack's outcome, not a cut: every image counts
    const records = JSON.parse(readFileSync(join(out, 'images.json'), 'utf8')) as { end: string; queries: number }[];
    expect(records.some((rec) => rec.end === 'key_blocked')).toBe(true);
    expect(Math.max(...records.map((rec) => rec.queries))).toBeLessThan(300);

    // What each key paid is what the victim charged it; the blocked key 0 carried nothing, the others did.
    const charged = await Promise.all(KEYS.map(async (k, i) => (await used(k.key)) - before[i]));
    expect(r.detection?.paidByKey).toEqual(charged);
    expect(charged[0]).toBe(0);
    expect(Math.min(...charged.slice(1))).toBeGreaterThan(0);
    // Every key ended blocked, each charged only up to its detection.
    const view = (await call(`${victim.url}/v1/admin/detections`, { headers: bearer(ADMIN) })).body as unknown as DetectorView;
    expect(view.detections.map((d) => d.client).sort()).toEqual(KEYS.map((k) => k.id));
    for (const k of KEYS.slice(1)) expect(view.detections.find((d) => d.client === k.id)?.queries).toBe(await used(k.key));
  }, 240_000);
});
