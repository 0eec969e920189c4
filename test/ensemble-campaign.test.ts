import http from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { main } from '../adversary/cli.js';
import { memberPath } from '../adversary/campaign/checkpoints.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import type { VictimProcess } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { startKeyedVictim } from './victim-client.js';

/**
 * An ensemble campaign against a real victim process: the extra member costs no query, the transfer
 * options reach the sweep, a re-run reuses the saved member, and bad options cost nothing.
 */
const SMALL: CampaignInput = {
  seed: 4,
  seedSize: 40,
  rounds: 3,
  epochs: 10,
  evalSize: 100,
  epsilons: [0.3],
  attack: 'mi-fgsm',
  steps: 3,
  loss: 'margin',
  diversity: 0.5,
  tiKernel: 3,
  boundary: { enabled: false },
};
const KEY = { id: 'ens', key: 'k-ensemble-0123456789', budget: 20_000 };

let victim: VictimProcess;
let dir: string;

/**
 * A fresh connection per probe: a kept-alive socket left idle while a slow campaign runs in this process
 * is closed by the victim (keepAliveTimeout 5 s), and reusing it as the close arrives hangs up.
 */
async function victimCount(): Promise<number> {
  const image = Array.from({ length: 784 }, (_, i) => ((i * 41) % 255) / 255);
  const res = await axios.post(`${victim.url}/v1/label`, { inputs: [image] }, { headers: { Authorization: `Bearer ${KEY.key}` }, httpAgent: new http.Agent({ keepAlive: false }) });
  return (res.data as { budget: { used: number } }).budget.used - 1;
}

async function campaign(out: string, settings: CampaignInput): Promise<CampaignResults> {
  const oracle = await createHttpOracle({ url: victim.url, apiKey: KEY.key, cacheDir: out });
  try {
    return await runCampaign(resolveConfig({ ...settings, victim: victim.url }), out, oracle, { log: () => {} });
  } finally {
    await oracle.close();
  }
}

beforeAll(async () => {
  const model = await ensureTestVictim();
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-ensemble-'));
  victim = await startKeyedVictim({ dir, model, keys: [KEY], rateLimit: 1000, timeoutMs: 120_000 });
});

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a substitute ensemble campaign over HTTP', () => {
  it('pays the same attack queries as one substitute, records the members, and reuses them on a re-run', async () => {
    const single = await campaign(join(dir, 'single'), { ...SMALL, substitute: 'papernot-mlp' });
    const out = join(dir, 'ensemble');
    const ensemble = await campaign(out, { ...SMALL, substitute: ['papernot-mlp', 'papernot-mlp'], combine: 'loss' });
    // Same seed, same first member: the same points labelled, the second member adds none.
    expect(ensemble.queries.attack).toBe(single.queries.attack);
    expect(ensemble.queries.attack).toBe(160);
    expect(ensemble.ensemble?.members).toHaveLength(1);
    expect(ensemble.ensemble?.members[0]).toMatchObject({ member: 2, arch: 'papernot-mlp' });
    // A second initialisation fitted to the same 160 labels: it learnt them (well above chance), differently.
    expect(ensemble.ensemble?.members[0].agreement).toBeGreaterThan(0.4);
    expect(ensemble.ensemble?.members[0].agreement).not.toBe(single.agreement);
    expect(existsSync(join(out, memberPath(2), 'model.json'))).toBe(true);
    const point = ensemble.epsilons.find((p) => p.mode === 'untargeted');
    expect(point?.meanL2).toBeGreaterThan(0);
    // An L∞ ε of 0.3 bounds the L2 norm of a 784-pixel perturbation by 0.3·√784 = 8.4.
    expect(point?.meanL2).toBeLessThanOrEqual(8.4 + 1e-9);

    // Re-run into the same folder: every round and the member come from disk, no attack query is paid again.
    rmSync(join(out, 'results.json'));
    const before = await victimCount();
    const again = await campaign(out, { ...SMALL, substitute: ['papernot-mlp', 'papernot-mlp'], combine: 'loss' });
    expect(again.ensemble?.members[0].trainSeconds).toBe(0);
    expect(again.epsilons).toEqual(ensemble.epsilons);
    // Only the probe that read `before` was charged in between.
    expect((await victimCount()) - before).toBe(1);
  });

  it('adds an earlier round of the first substitute as a member: no query, no training, its round\'s agreement', async () => {
    const out = join(dir, 'snapshot');
    const withSnapshot = await campaign(out, { ...SMALL, substitute: 'papernot-mlp', snapshots: [2] });
    expect(withSnapshot.queries.attack).toBe(160);
    expect(withSnapshot.ensemble?.members).toEqual([expect.objectContaining({ member: 2, arch: 'papernot-mlp', round: 2, trainSeconds: 0 })]);
    // The snapshot is the round-2 substitute itself: the same labels on the same evaluation images.
    expect(withSnapshot.ensemble?.members[0].agreement).toBe(withSnapshot.rounds[1].agreement);
    expect(existsSync(join(out, memberPath(2)))).toBe(false);
  });

  it('rejects bad transfer options, all at once, before any query', async () => {
    const before = await victimCount();
    const out = join(dir, 'bad');
    const run = main(['run', '--victim', victim.url, '--api-key', KEY.key, '--out', out, '--substitute', 'paper-cnn', 'resnet', '--loss', 'hinge', '--ti-kernel', '4', '--diversity', '2', '--label-smoothing', '1']);
    await expect(run).rejects.toThrow(/substitute[\s\S]*labelSmoothing[\s\S]*loss[\s\S]*diversity[\s\S]*tiKernel/);
    expect((await victimCount()) - before).toBe(1);
    expect(existsSync(join(out, 'answers.jsonl'))).toBe(false);
  });
});
