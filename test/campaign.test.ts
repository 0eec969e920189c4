import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { memoryRunStore } from '../adversary/run/store.js';
import { ANSWER_CACHE_FILE } from '../adversary/oracle/answer-cache.js';
import { NODE_TS, ROOT, type VictimProcess } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { startKeyedVictim } from './victim-client.js';

/**
 * The attack end to end against a REAL victim process on loopback: a short campaign, then the
 * same campaign killed mid-run and resumed, checked against the victim's own query count; and
 * the same campaign again in a run store in memory, which must give what the run folder holds.
 */
const SMALL: CampaignInput = {
  seed: 3,
  seedSize: 40,
  rounds: 3,
  epochs: 3,
  substitute: 'papernot-mlp',
  evalSize: 120,
  epsilons: [0.1, 0.3],
  boundary: { images: 20, maps: 1, grid: 5, rays: { images: 10, queries: 60 } },
};
const KEYS = [
  { id: 'straight', key: 'k-straight-0123456789', budget: 20_000 },
  { id: 'resumed', key: 'k-resumed-0123456789', budget: 20_000 },
  { id: 'memory', key: 'k-memory-01234567890', budget: 20_000 },
];

/** Every file under a folder, relative to it, sorted. */
const filesUnder = (root: string, prefix = ''): string[] =>
  readdirSync(join(root, prefix), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? filesUnder(root, `${prefix}${e.name}/`) : [`${prefix}${e.name}`]))
    .sort();

let victim: VictimProcess;
let dir: string;

/** The victim's own count for a key: one fresh image reports `budget.used` (that image included). */
async function victimCount(key: string): Promise<number> {
  const image = Array.from({ length: 784 }, (_, i) => ((i * 37 + key.length) % 255) / 255);
  const res = await axios.post(`${victim.url}/v1/label`, { inputs: [image] }, { headers: { Authorization: `Bearer ${key}` } });
  return (res.data as { budget: { used: number } }).budget.used - 1;
}

beforeAll(async () => {
  const model = await ensureTestVictim();
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-campaign-'));
  victim = await startKeyedVictim({ dir, model, keys: KEYS, rateLimit: 1000, timeoutMs: 120_000 });
});

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('black-box campaign against a real victim process', () => {
  let straight: CampaignResults;

  it('runs end to end and reports what it paid', async () => {
    const out = join(dir, 'straight');
    const config = resolveConfig({ ...SMALL, victim: victim.url });
    const oracle = await createHttpOracle({ url: victim.url, apiKey: KEYS[0].key, cacheDir: out });
    straight = await runCampaign(config, out, oracle, { log: () => {} });
    await oracle.close();

    // Seed set, then one augmentation per round but the last: 40 · 2^(3−1) attack queries.
    expect(straight.queries.attack).toBe(160);
    expect(straight.rounds.map((r) => r.substituteSize)).toEqual([40, 80, 160]);
    expect(straight.epsilons).toHaveLength(4);
    for (const p of straight.epsilons) {
      expect(p.misclassificationRate).toBeGreaterThanOrEqual(0);
      expect(p.misclassificationRate).toBeLessThanOrEqual(1);
    }
    const untargeted = straight.epsilons.filter((p) => p.mode === 'untargeted');
    expect(untargeted[1].misclassificationRate!).toBeGreaterThan(untargeted[0].misclassificationRate!);
    expect(straight.victimCleanAccuracy!).toBeGreaterThan(0.7);
    expect(straight.backend).toBeTruthy();
    for (const f of ['config.json', 'results.json', 'results.csv', 'queries.jsonl']) expect(existsSync(join(out, f))).toBe(true);
    // Each model's own nearest boundary (RayS) on the first 10 images, its victim queries counted as measurement.
    const nearest = straight.boundary?.nearest;
    expect(nearest?.victim).toHaveLength(10);
    expect(nearest!.queries).toBeGreaterThan(0);
    expect(nearest!.queries).toBeLessThanOrEqual(10 * 60);
    expect(nearest!.victimSummary.flipped).toBeGreaterThan(5);
    expect(straight.boundary?.queries.nearest).toBe(nearest!.queries);
    // The adversary's total equals the victim's own count for the key.
    expect(await victimCount(KEYS[0].key)).toBe(straight.queries.attack + straight.queries.measurement);
  });

  it('resumes a campaign killed mid-run with the same results and nothing paid twice', async () => {
    const out = join(dir, 'resumed');
    const args = ['adversary/cli.ts', 'run', '--victim', victim.url, '--out', out];
    const flags = ['--seed', '3', '--seed-size', '40', '--rounds', '3', '--epochs', '3', '--substitute', 'papernot-mlp', '--eval-size', '120', '--epsilons', '0.1', '0.3'];
    const cfg = join(dir, 'small.yaml');
    writeFileSync(cfg, `boundary:\n  images: 20\n  maps: 1\n  grid: 5\n  rays:\n    images: 10\n    queries: 60\n`);
    const env = { ...process.env, TRANSFERLAB_API_KEY: KEYS[1].key, TRANSFERLAB_QUIET: '1' };
    const child = spawn(NODE_TS[0], [...NODE_TS.slice(1), ...args, ...flags, '--config', cfg], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const firstRound = join(out, 'checkpoints', 'round-01', 'round.json');
    await new Promise<void>((done, fail) => {
      const timer = setInterval(() => {
        if (existsSync(firstRound)) {
          child.kill('SIGKILL');
          clearInterval(timer);
          done();
        }
      }, 20);
      child.once('exit', () => {
        clearInterval(timer);
        if (!existsSync(firstRound)) fail(new Error(`the campaign exited before its first checkpoint: ${stderr}`));
      });
    });
    await new Promise((r) => child.once('exit', r).once('close', r));
    expect(existsSync(join(out, 'results.json'))).toBe(false);

    const resumed = spawn(NODE_TS[0], [...NODE_TS.slice(1), 'adversary/cli.ts', 'run', '--resume', out], { cwd: ROOT, env, stdio: 'ignore' });
    const code = await new Promise((r) => resumed.once('exit', r));
    expect(code).toBe(0);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CampaignResults;
    expect(results.rounds).toEqual(straight.rounds.map((r) => ({ ...r, trainSeconds: expect.any(Number), augmentSeconds: expect.any(Number) })));
    expect(results.epsilons).toEqual(straight.epsilons);
    expect(results.queries.attack).toBe(straight.queries.attack);
    expect(results.queries.measurement).toBe(straight.queries.measurement);
    expect(await victimCount(KEYS[1].key)).toBe(results.queries.attack + results.queries.measurement);
  });

  it('runs in a store in memory with the results, files and paid answers of the run folder, and writes no file', async () => {
    const before = filesUnder(dir);
    const store = memoryRunStore('memory');
    const oracle = await createHttpOracle({ url: victim.url, apiKey: KEYS[2].key, store });
    const r = await runCampaign(resolveConfig({ ...SMALL, victim: victim.url }), store, oracle, { log: () => {} });
    await oracle.close();

    const seconds = { trainSeconds: expect.any(Number), augmentSeconds: expect.any(Number) };
    expect(r.rounds).toEqual(straight.rounds.map((x) => ({ ...x, ...seconds })));
    for (const key of ['queries', 'epsilons', 'perClass', 'boundary', 'images', 'victimCleanAccuracy', 'agreement'] as const) expect(r[key]).toEqual(straight[key]);
    // The run folder's files, the oracle's answer cache, ledger and id included, and the same answers paid for.
    const folder = join(dir, 'straight');
    expect(store.files()).toEqual(filesUnder(folder));
    const answers = (b: Uint8Array | Buffer) => new TextDecoder().decode(b).trim().split('\n').map((l) => JSON.parse(l) as unknown).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(answers(store.read(ANSWER_CACHE_FILE)!)).toEqual(answers(readFileSync(join(folder, ANSWER_CACHE_FILE))));
    for (const f of ['results.csv', ...r.images!.grids, ...r.images!.maps]) expect(Buffer.from(store.read(f)!).equals(readFileSync(join(folder, f)))).toBe(true);
    // Nothing was written outside the store (the victim's own logs aside).
    const victimLogs = ['audit.jsonl', 'ledger.jsonl'];
    expect(filesUnder(dir).filter((f) => !victimLogs.includes(f))).toEqual(before.filter((f) => !victimLogs.includes(f)));
    expect(await victimCount(KEYS[2].key)).toBe(r.queries.attack + r.queries.measurement);
  });
});
