import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { QueryAttackResults } from '../adversary/query/run.js';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { createRng, permutation } from '../shared/random.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import type { DetectorView } from '../victim/detect/detection.js';
import { detectorSet } from '../victim/detect/detectors.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, call, labelUint8, ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * Blacklight: fingerprints of quantised pixel windows flag a key whose queries are near-duplicates
 * of its earlier ones (a decision-based attack's probes), not one sending natural images; memory
 * stays bounded; and on a real victim process (--detector prada blacklight --detector-action block)
 * a RayS attack is refused soon after it starts, with nothing more charged, and the run ends with
 * what it had found (stopped: key_blocked).
 */
const test = loadMnist('test');
const image = (i: number) => test.images.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);

describe('Blacklight detector', () => {
  it('matches near-duplicates, not different digits', () => {
    const d = new BlacklightDetector();
    const x = image(0);
    const a = d.fingerprint(x, 0, IMAGE_SIZE);
    expect(a.length).toBeGreaterThan(0);
    expect(a.length).toBeLessThanOrEqual(50);
    expect(d.fingerprint(x, 0, IMAGE_SIZE)).toEqual(a);
    const near = x.map((v, p) => Math.min(1, v + (p % 7 === 0 ? 2 / 255 : 0)));
    const b = d.fingerprint(near, 0, IMAGE_SIZE);
    const shared = (u: Uint32Array, v: Uint32Array) => u.filter((h) => v.includes(h)).length;
    expect(shared(a, b)).toBeGreaterThanOrEqual(30);
    expect(shared(a, d.fingerprint(image(1), 0, IMAGE_SIZE))).toBeLessThan(30);
  });

  it('flags a key after minMatches near-duplicate queries, and a lift starts it afresh', () => {
    const d = new BlacklightDetector({ minMatches: 3 });
    const labels = new Int32Array(1);
    expect(d.observe('k', image(0), labels)).toBeNull();
    const rng = createRng(1);
    let flaggedAt = 0;
    for (let q = 1; q < 10 && !flaggedAt; q++) {
      const probe = image(0).map((v) => Math.min(1, Math.max(0, v + (rng() < 0.02 ? 3 / 255 : 0))));
      if (d.observe('k', probe, labels)) flaggedAt = q + 1;
    }
    expect(flaggedAt).toBe(4); // the first query matches nothing; the next three each match it
    expect(d.summaries()[0]).toMatchObject({ clientId: 'k', flagged: true, matches: 3 });
    d.forget('k');
    expect(d.summaries()).toEqual([]);
  });

  it('no false positive over natural test images, and memory bounded by history × hashes', () => {
    const d = new BlacklightDetector({ history: 500 });
    const order = permutation(test.count, createRng(5));
    for (let s = 0; s < 2000; s += 100) {
      const batch = new Float32Array(100 * IMAGE_SIZE);
      for (let i = 0; i < 100; i++) batch.set(image(order[s + i]), i * IMAGE_SIZE);
      expect(d.observe('benign', batch, new Int32Array(100))).toBeNull();
    }
    const [c] = d.summaries();
    expect(c.queries).toBe(2000);
    expect(c.matches).toBe(0);
    expect(d.memoryBytes).toBeLessThanOrEqual(500 * 50 * 48);
    expect(d.memoryBytes).toBeGreaterThan(0);
  });

  it('refuses bad settings, naming them', () => {
    expect(() => new BlacklightDetector({ threshold: 60 })).toThrow(/threshold must be an integer in 1\.\.50/);
    expect(() => new BlacklightDetector({ window: 0, step: 300 })).toThrow(/step must be .*window must be/);
  });

  it('combined with PRADA: the first detector to flag names the detection, a lift clears both', () => {
    const set = detectorSet({ prada: new PradaDetector(), blacklight: new BlacklightDetector({ minMatches: 1 }) });
    expect(set.kinds).toEqual(['prada', 'blacklight']);
    set.observe('k', image(3), new Int32Array(1));
    const found = set.observe('k', image(3).map((v) => Math.min(1, v + 1 / 255)), new Int32Array(1));
    expect(found?.by).toBe('blacklight');
    expect(set.observe('k', image(3), new Int32Array(1))).toBeNull(); // flagged once
    set.forget('k');
    expect(set.summaries()).toEqual([]);
  });
});

describe('Blacklight on a real victim process (block mode)', () => {
  const KEYS = { rays: 'rays-0123456789abcdef', benign: 'benign-0123456789abcdef' };
  const ADMIN = 'admin-0123456789abcdef0123';
  let dir: string;
  let victim: KeyedVictim;

  beforeAll(async () => {
    const modelDir = await ensureTestVictim();
    const { backend } = await initBackend();
    dir = mkdtempSync(join(tmpdir(), 'transferlab-blacklight-'));
    writeFileSync(join(dir, 'admin.key'), `${ADMIN}\n`);
    victim = await startKeyedVictim({
      dir, model: modelDir, backend, keys: KEYS, budget: 100_000, rateLimit: 100_000,
      args: ['--detector', 'prada', 'blacklight', '--detector-action', 'block', '--admin-key-file', join(dir, 'admin.key')],
    });
  }, 300_000);

  afterAll(async () => {
    await victim?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a benign key is not flagged; RayS is refused within 50 queries and charged nothing more', async () => {
    const order = permutation(test.count, createRng(9));
    for (let s = 0; s < 1000; s += 100) {
      const r = await labelUint8(victim.url, concatPixels(order.subarray(s, s + 100)), bearer(KEYS.benign));
      expect(r.status).toBe(200);
    }
    const run = join(dir, 'rays');
    // The block ends the search: the run reports what it had found before, marked key_blocked.
    expect(await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.rays, attack: 'rays', images: 1, queriesPerImage: 500 }, () => run)).toBe(0);
    const results = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as QueryAttackResults;
    expect(results.stopped).toBe('key_blocked');
    expect(results.partial).toBeNull();
    const [record] = JSON.parse(readFileSync(join(run, 'images.json'), 'utf8')) as { end: string; queries: number }[];
    expect(record.end).toBe('key_blocked');
    expect(record.queries).toBeLessThan(500);
    const view = (await call(`${victim.url}/v1/admin/detections`, { headers: bearer(ADMIN) })).body as unknown as DetectorView;
    expect(view.detector?.kinds).toEqual(['prada', 'blacklight']);
    const flagged = view.detections.find((d) => d.client === 'rays');
    expect(flagged?.by).toBe('blacklight');
    expect(flagged!.queries).toBeLessThanOrEqual(50);
    expect(view.detections.find((d) => d.client === 'benign')).toBeUndefined();
    // Everything after the flag was refused without a charge.
    expect(ledgerTotal(victim.files.ledger, 'rays')).toBe(flagged!.queries);
  }, 240_000);
});

function concatPixels(rows: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(rows.length * IMAGE_SIZE);
  for (let i = 0; i < rows.length; i++) out.set(test.pixels.subarray(rows[i] * IMAGE_SIZE, (rows[i] + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
  return out;
}
