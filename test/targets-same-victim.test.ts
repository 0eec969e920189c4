/**
 * One victim process serving its model three ways (--protocol transferlab,oip,tfserving), and the same
 * small campaign through each target: the label-only reduction makes the campaigns identical — the
 * same labels paid for, the same substitute, the same figures — and each key's paid queries are what
 * the victim itself counted for it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { ANSWER_CACHE_FILE } from '../adversary/oracle/answer-cache.js';
import { fileRunStore } from '../adversary/run/store.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import type { TargetKind } from '../adversary/targets/settings.js';
import { initBackend } from '../shared/engine/backend.js';
import { loadDataset } from '../shared/datasets/index.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { startKeyedVictim } from './victim-client.js';

const SMALL: CampaignInput = {
  seed: 5,
  seedSize: 30,
  rounds: 2,
  epochs: 2,
  substitute: 'papernot-mlp',
  evalSize: 60,
  epsilons: [0.3],
  targeted: false,
  boundary: { enabled: false },
};
const KINDS: TargetKind[] = ['transferlab', 'oip', 'tfserving'];
const KEYS = KINDS.map((kind) => ({ id: kind, key: `k-${kind}-0123456789`, budget: 5_000 }));

let victim: VictimProcess;
let topk: VictimProcess;
let dir: string;

/** The victim's own count for a key: one fresh image reports `budget.used` (that image included). */
async function victimCount(key: string): Promise<number> {
  const image = Array.from({ length: 784 }, (_, i) => ((i * 31 + key.length) % 255) / 255);
  const res = await axios.post(`${victim.url}/v1/label`, { inputs: [image] }, { headers: { Authorization: `Bearer ${key}` } });
  return (res.data as { budget: { used: number } }).budget.used - 1;
}

beforeAll(async () => {
  const model = await ensureTestVictim();
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'targets-same-victim-'));
  victim = await startKeyedVictim({ dir, model, keys: KEYS, rateLimit: 1000, args: ['--protocol', 'transferlab,oip,tfserving', '--model-name', 'model'], timeoutMs: 120_000 });
  // The same model answering the 2 most probable classes (the victim's output policy topk:2), open service.
  topk = await spawnVictim({
    args: ['--model', model, '--port', '0', '--no-train', '--audit-log', join(dir, 'audit-topk.jsonl'), '--ledger', join(dir, 'ledger-topk.jsonl'),
      '--rate-limit', '1000', '--protocol', 'transferlab,oip', '--model-name', 'model', '--output', 'topk:2'],
    timeoutMs: 120_000,
  });
});

afterAll(async () => {
  await victim?.stop();
  await topk?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the same campaign through transferlab, oip and tfserving against one victim', () => {
  it('pays for the same labels and reports the same figures, each key charged what it counted', async () => {
    const results: Record<string, CampaignResults> = {};
    const answers: Record<string, string[]> = {};
    for (const [i, kind] of KINDS.entries()) {
      const out = join(dir, kind);
      const target = kind === 'transferlab' ? { target: kind } : { target: kind, modelName: 'model' };
      const config = resolveConfig({ ...SMALL, ...target, victim: victim.url });
      const oracle = await createTargetOracle({ url: victim.url, apiKey: KEYS[i].key, target, store: fileRunStore(out) });
      results[kind] = await runCampaign(config, out, oracle, { log: () => {} });
      await oracle.close();
      // Label and purpose of each image paid for, in order (the hash is of the same bytes everywhere).
      answers[kind] = readFileSync(join(out, ANSWER_CACHE_FILE), 'utf8').trim().split('\n').map((l) => {
        const { h, l: label, p, ...rest } = JSON.parse(l) as { h: string; l: number; p: string };
        expect(rest).toEqual({}); // label-only: nothing else is kept
        return `${h} ${label} ${p}`;
      });
      expect(await victimCount(KEYS[i].key)).toBe(results[kind].queries.attack + results[kind].queries.measurement);
    }
    const figures = (r: CampaignResults) => ({
      queries: r.queries,
      clean: r.victimCleanAccuracy,
      rounds: r.rounds.map((x) => [x.substituteSize, x.attackQueries, x.agreement, x.substituteAccuracy]),
      epsilons: r.epsilons.map((p) => [p.mode, p.epsilon, p.misclassificationRate, p.transferRate]),
    });
    expect(results.transferlab.queries.attack).toBe(60);
    expect(answers.oip).toEqual(answers.transferlab);
    expect(answers.tfserving).toEqual(answers.transferlab);
    expect(figures(results.oip)).toEqual(figures(results.transferlab));
    expect(figures(results.tfserving)).toEqual(figures(results.transferlab));
  });
});

describe('a topk threat against a top-2 victim', () => {
  it('gets the 2 best probabilities through transferlab and oip alike, and a scores threat is refused before any query', async () => {
    const refused = await createTargetOracle({ url: topk.url, threat: 'scores' }).then(() => null, (e: Error & { code?: string }) => e);
    expect(refused?.code).toBe('threat_unavailable');
    expect(refused?.message).toContain('answers "topk:2"');
    const ds = loadDataset('mnist').test;
    const n = 6;
    const x = ds.images.subarray(0, n * 784);
    const rows: Record<string, number[][]> = {};
    for (const kind of ['transferlab', 'oip'] as const) {
      const out = join(dir, `topk-${kind}`);
      const oracle = await createTargetOracle({ url: topk.url, threat: 'topk', target: { target: kind, ...(kind === 'oip' ? { modelName: 'model' } : {}) }, store: fileRunStore(out) });
      const scores = await oracle.scores!(x, n, 'measurement');
      const labels = await oracle.label(x, n, 'measurement'); // from the cache
      expect(oracle.counts()).toMatchObject({ measurement: n, cached: n });
      rows[kind] = Array.from({ length: n }, (_, i) => Array.from(scores.subarray(i * 10, (i + 1) * 10)));
      rows[kind].forEach((r, i) => expect(r.indexOf(Math.max(...r.filter((v) => !Number.isNaN(v))))).toBe(labels[i]));
      await oracle.close();
      const cached = readFileSync(join(out, ANSWER_CACHE_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { s: (number | null)[] });
      expect(cached.every((a) => a.s.length === 10)).toBe(true);
    }
    // transferlab's /v1/predict names the 2 classes (the others not given: NaN); OIP's rows carry them with zeros elsewhere.
    for (const [i, r] of rows.transferlab.entries()) {
      expect(r.filter((v) => !Number.isNaN(v))).toHaveLength(2);
      r.forEach((v, c) => expect(rows.oip[i][c]).toBeCloseTo(Number.isNaN(v) ? 0 : v, 5));
    }
  });
});
