import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { writeReport } from '../adversary/report/report.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { initBackend } from '../shared/engine/backend.js';
import { loadDataset } from '../shared/datasets/index.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { evaluateModel } from '../scripts/lab/evaluate.js';
import { ensureFashionVictim } from './fixtures.js';
import { writeShapesTree } from './shapes-tree.js';

/**
 * A Fashion-MNIST campaign end to end over HTTP: a small lenet victim trained on Fashion-MNIST,
 * served by a real victim process; the adversary takes its dataset from /v1/info, draws its seed and
 * evaluation images from Fashion-MNIST's test part, and records the dataset in results.json.
 */
let victim: VictimProcess;
let dir: string;

beforeAll(async () => {
  const model = await ensureFashionVictim();
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-fashion-'));
  victim = await spawnVictim({
    args: ['--model', model, '--port', '0', '--no-train', '--audit-log', join(dir, 'audit.jsonl'), '--ledger', join(dir, 'ledger.jsonl'), '--rate-limit', '1000'],
    timeoutMs: 120_000,
  });
});

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a Fashion-MNIST campaign against a real victim process', () => {
  it('draws its images from Fashion-MNIST, attacks over HTTP and records the dataset', async () => {
    const out = join(dir, 'run');
    const config = resolveConfig({
      victim: victim.url, seed: 5, seedSize: 40, rounds: 3, epochs: 3, substitute: 'papernot-mlp',
      evalSize: 120, epsilons: [0.05, 0.3], boundary: { images: 10, maps: 1, grid: 5 },
    });
    const oracle = await createHttpOracle({ url: victim.url, cacheDir: out });
    const info = await oracle.info();
    expect(info.dataset).toBe('fashion-mnist');
    const logs: string[] = [];
    const r = await runCampaign(config, out, oracle, { log: (l) => logs.push(l) });
    await oracle.close();
    await writeReport(out, r);

    expect(r.dataset).toMatchObject({ name: 'fashion-mnist', kind: 'builtin', shape: [28, 28, 1], classes: 10, testImages: 10_000 });
    expect(r.dataset?.classNames[0]).toBe('T-shirt/top');
    expect(r.queries.attack).toBe(160);
    // Scored against Fashion-MNIST's labels: an MNIST evaluation set would put this victim near chance.
    expect(r.victimCleanAccuracy!).toBeGreaterThan(0.6);
    const u = r.epsilons.filter((p) => p.mode === 'untargeted');
    expect(u[1].misclassificationRate!).toBeGreaterThan(u[0].misclassificationRate!);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CampaignResults;
    expect(saved.dataset?.name).toBe('fashion-mnist');
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('fashion-mnist');
    expect(logs.some((l) => l.startsWith('note:'))).toBe(false);
  });

  it('refuses, before any query, a dataset whose images do not fit the victim', async () => {
    const out = join(dir, 'mismatch');
    // A 3-class RGB tree cannot be the seed set of a 28×28×1, 10-class victim.
    const { writeShapesTree } = await import('./shapes-tree.js');
    const tree = writeShapesTree(join(dir, 'shapes'), { size: 8, perClass: 3 });
    expect(loadDataset(tree).shape).toEqual([8, 8, 3]);
    const oracle = await createHttpOracle({ url: victim.url, cacheDir: out });
    const config = resolveConfig({ victim: victim.url, dataset: tree, seedSize: 10, evalSize: 10 });
    await expect(runCampaign(config, out, oracle, { log: () => {} })).rejects.toThrow(/takes 28×28×1 images in 10 classes.*holds 8×8×3 images in 3 classes/);
    expect(oracle.counts().attack + oracle.counts().measurement).toBe(0);
    await oracle.close();
  });
});

describe('the defence evaluation on a Fashion-MNIST model', () => {
  it("attacks the test images of the model's own dataset, or refuses a dataset of another shape", async () => {
    const model = await ensureFashionVictim();
    const opts = { count: 40, epsilons: [0.1], pgdSteps: 2, pgdStepSize: 0.05, restarts: 1, marginRestarts: 1, seed: 1 };
    const e = await evaluateModel(model, opts);
    expect(e.dataset).toBe('fashion-mnist');
    // Read with MNIST's digits, a Fashion model would score near chance; on its own test images far above it.
    expect(e.cleanAccuracy).toBeGreaterThan(0.5);
    const shapes = join(dir, 'rgb-tree');
    writeShapesTree(shapes, { size: 8, perClass: 4 });
    await expect(evaluateModel(model, { ...opts, dataset: shapes })).rejects.toThrow(/takes 28×28×1 images but dataset/);
  });
});
