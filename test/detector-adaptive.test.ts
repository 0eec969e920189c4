import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { QueryAttackResults } from '../adversary/query/run.js';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { HEADERS } from '../shared/protocol/index.js';
import { REDIS_SERVER, haveRedis } from '../scripts/redis-server.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import { detectorSet } from '../victim/detect/detectors.js';
import { detectorRedis } from './detector-redis.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, call, labelUint8, startKeyedVictim, type TestVictim } from './victim-client.js';

/**
 * Blacklight against adaptive attackers, on real victim processes: action `reject` refuses exactly
 * the batches holding a query the detector flags (the same verdicts a local detector gives), charges
 * none of them and goes on serving the key; a global hash store catches one attack spread over many
 * keys, where per-key stores see nothing (also through a shared Redis log); and a Sybil query attack's
 * answered queries, summed over its keys, are exactly what the victim charged them.
 */
const KEYS = Array.from({ length: 8 }, (_, k) => ({ id: `k${k}`, key: `sybil-${k}-0123456789abcdef` }));
let dir: string;
let perKey: TestVictim;
let global: TestVictim;
let clean: Uint8Array;

const image = (i: number) => clean.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
/** A near-duplicate: `n` pixels of the image nudged by one level, as a boundary search's probes are. */
const nudged = (i: number, n: number, seed: number) => {
  const out = image(i);
  for (let k = 0; k < n; k++) {
    const p = (seed * 131 + k * 37) % IMAGE_SIZE;
    out[p] = out[p] < 255 ? out[p] + 1 : 254;
  }
  return out;
};
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.length * IMAGE_SIZE);
  parts.forEach((p, k) => out.set(p, k * IMAGE_SIZE));
  return out;
};
const used = async (v: TestVictim, key: string) => (await call(`${v.url}/v1/budget`, { headers: bearer(key) })).body as unknown as { used: number };

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  clean = loadMnist('test').pixels.slice(0, 20 * IMAGE_SIZE);
  dir = mkdtempSync(join(tmpdir(), 'transferlab-adaptive-'));
  const victim = (name: string, scope: string) =>
    startKeyedVictim({
      dir, model: modelDir, backend, name, keys: KEYS, budget: 100_000, rateLimit: 100_000,
      args: ['--detector', 'blacklight', '--detector-action', 'reject', '--blacklight-scope', scope],
    });
  [perKey, global] = await Promise.all([victim('key', 'key'), victim('global', 'global')]);
}, 300_000);

afterAll(async () => {
  await Promise.all([perKey?.stop(), global?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('detector action reject', () => {
  it('refuses exactly the batches holding a flagged query (403 query_rejected, naming them), charges none, and keeps serving the key', async () => {
    const key = KEYS[0].key;
    const requests = [concat(image(0)), concat(nudged(0, 3, 1)), concat(image(1)), concat(image(2), nudged(1, 2, 2)), concat(image(3), image(4))];
    // The verdicts of a local Blacklight with the victim's settings on the same stream.
    const local = new BlacklightDetector();
    const expected = requests.map((r) => {
      const flagged: number[] = [];
      local.observe('c', Float32Array.from(r, (v) => v / 255), new Int32Array(r.length / IMAGE_SIZE), undefined, flagged);
      return flagged;
    });
    expect(expected.map((f) => f.length > 0)).toEqual([false, true, false, true, false]); // the stream holds refusals and answers
    let charged = 0;
    for (const [k, r] of requests.entries()) {
      const before = (await used(perKey, key)).used;
      const reply = await labelUint8(perKey.url, r, bearer(key));
      const after = (await used(perKey, key)).used;
      if (expected[k].length === 0) {
        expect(reply.status).toBe(200);
        expect(after - before).toBe(r.length / IMAGE_SIZE);
        charged += r.length / IMAGE_SIZE;
      } else {
        expect(reply.status).toBe(403);
        expect(reply.body.error?.code).toBe('query_rejected');
        expect(reply.headers.get(HEADERS.rejectedImages)).toBe(expected[k].join(','));
        expect(after).toBe(before);
      }
    }
    expect((await used(perKey, key)).used).toBe(charged);
  });

  it('a global store flags one attack spread over several keys; per-key stores do not', async () => {
    // Keys 1..6 each send one near-duplicate of the same image: no key repeats itself.
    const statuses = async (v: TestVictim) => {
      const out: number[] = [];
      for (let k = 1; k <= 6; k++) out.push((await labelUint8(v.url, nudged(5, 2, k), bearer(KEYS[k].key))).status);
      return out;
    };
    expect(await statuses(perKey)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(await statuses(global)).toEqual([200, 403, 403, 403, 403, 403]);
  });
});

describe('Sybil query attack', () => {
  it("spreads its queries over the keys file's keys; what it paid per key is what the victim charged each", async () => {
    const keys = KEYS.slice(5, 8);
    writeFileSync(join(dir, 'sybil.txt'), `# three keys\n${keys.map((k) => k.key).join('\n')}\n`);
    const out = join(dir, 'sybil-run');
    const before = await Promise.all(keys.map(async (k) => (await used(global, k.key)).used));
    const code = await runQueryAttackCommand(
      { victim: global.url, keysFile: join(dir, 'sybil.txt'), requestSize: 1, adaptive: true, images: 2, queriesPerImage: 60, seedSize: 10, seed: 3, out },
      () => out,
    );
    expect(code).toBe(0);
    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as QueryAttackResults;
    const charged = await Promise.all(keys.map(async (k, i) => (await used(global, k.key)).used - before[i]));
    expect(r.detection?.paidByKey).toEqual(charged);
    expect(charged.reduce((a, b) => a + b, 0)).toBe(r.queries.attack);
    expect(Math.min(...charged)).toBeGreaterThan(0); // round-robin: every key carried queries
    expect(r.detection?.flagged).toBeGreaterThan(0); // the global store saw the probes as one attack
    expect(r.detection?.refusedImages).toBe(r.detection?.flagged); // one image per request
  }, 120_000);
});

describe.skipIf(!haveRedis)('global Blacklight shared through Redis', () => {
  const shared = detectorRedis();

  it(`two replicas, each client on either: the one store refuses where one process would (${REDIS_SERVER})`, async () => {
    const replica = () => shared.replica(detectorSet({ blacklight: new BlacklightDetector({ scope: 'global' }) }), { compactBytes: 4096 });
    const replicas = [replica(), replica()];
    const reference = detectorSet({ blacklight: new BlacklightDetector({ scope: 'global' }) });
    const stream = Array.from({ length: 24 }, (_, q) => (q % 3 === 0 ? image(6 + (q % 5)) : nudged(6, 2, q)));
    for (const [q, pixels] of stream.entries()) {
      const images = Float32Array.from(pixels, (v) => v / 255);
      const client = `client-${q % 4}`;
      const want: number[] = [];
      reference.observe(client, images, new Int32Array(1), undefined, want);
      const got: number[] = [];
      const r = replicas[q % 2];
      await r.state.observe(r.detector, client, images, new Int32Array(1), undefined, got);
      expect(got).toEqual(want);
    }
    // Snapshots were taken (compactBytes is small) and the refusals still matched the reference's.
    expect(reference.summaries().reduce((s, c) => s + (c as { matches?: number }).matches!, 0)).toBeGreaterThan(10);
  });
});
