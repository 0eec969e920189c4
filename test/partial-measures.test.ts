import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { campaignPlan } from '../adversary/campaign/plan.js';
import { buildReport } from '../adversary/report/report.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { fileRunStore } from '../adversary/run/store.js';
import { initBackend } from '../shared/engine/backend.js';
import { TransferlabError } from '../shared/errors.js';
import { ensureTestVictim } from './fixtures.js';
import { budgetOf, seen, stagedOracle, type Staging } from './budget-staging.js';
import { startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * Every measure the key's budget can cut short, cut for real: a victim process with per-key budgets,
 * and a second client of the same key (a shared key) spending it down at the moment the measure
 * begins, so the budget runs out inside it. The run must stop with measurement_cut naming the measure
 * and write no results.json; a resume with another key's budget must finish with the same figures as
 * an uncut run, paying nothing twice. With allowPartial the cut measure is kept, labelled partial.
 */
const TINY: CampaignInput = {
  seed: 5,
  seedSize: 20,
  rounds: 2,
  epochs: 1,
  substitute: 'papernot-mlp',
  evalSize: 20,
  epsilons: [0.1, 0.3],
  targeted: false,
  boundary: { images: 10, maps: 2, grid: 5, rays: { images: 4, queries: 40 } },
};
const NAMES = ['straight', 'clean', 'transfer', 'distances', 'nearest', 'maps', 'partial', 'poor', 'rich'] as const;
const BUDGET: Record<string, number> = { poor: 100, rich: 20_000 };
const keyOf = (id: string) => `k-${id}-0123456789abcdef`;

let dir: string;
let victim: KeyedVictim;
let straight: CampaignResults;

beforeAll(async () => {
  const model = await ensureTestVictim();
  const { backend } = await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-partial-'));
  victim = await startKeyedVictim({ dir, model, backend, keys: NAMES.map((id) => ({ id, key: keyOf(id), budget: BUDGET[id] ?? 2_000 })), rateLimit: 0 });
}, 300_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const budgetOfKey = (id: string) => budgetOf(victim.url, keyOf(id));

async function campaign(id: string, out: string, opts: { stage?: (lines: string[], rounds: () => number) => Staging; extra?: CampaignInput } = {}): Promise<CampaignResults> {
  const lines: string[] = [];
  let rounds = 0;
  const stage = opts.stage?.(lines, () => rounds);
  const oracle = await stagedOracle(victim.url, keyOf(id), out, stage);
  try {
    return await runCampaign(resolveConfig({ ...TINY, ...opts.extra, victim: victim.url }), out, oracle, {
      log: (l) => lines.push(l),
      onRound: () => rounds++,
    });
  } finally {
    await oracle.close();
  }
}

async function expectCut(run: Promise<unknown>, what: RegExp): Promise<void> {
  const e = await run.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(TransferlabError);
  expect((e as TransferlabError).code).toBe('measurement_cut');
  expect((e as TransferlabError).message).toMatch(what);
}

const readResults = (out: string) => JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CampaignResults;

describe('a measure cut short by the key budget is never reported as whole', () => {
  beforeAll(async () => {
    straight = await campaign('straight', join(dir, 'straight'));
  }, 300_000);

  it('an uncut run records its plan beside what it paid, within the plan', () => {
    const plan = straight.queryPlan!;
    expect(plan.attack).toEqual({ planned: 40, atMost: false, paid: 40 });
    expect(plan.measurement.planned).toBe(20 + 2 * 20 + 10 * 20 + 4 * 40 + 2 * 25);
    expect(plan.measurement.atMost).toBe(true);
    expect(plan.measurement.paid).toBeLessThanOrEqual(plan.measurement.planned);
    expect(plan.budget).toEqual({ used: 0, limit: 2_000 });
    expect(straight.partial).toEqual([]);
    expect(campaignPlan(resolveConfig(TINY)).measurement.planned).toBe(plan.measurement.planned);
  });

  it('clean evaluation labels: stops even with allowPartial (every figure needs them all)', async () => {
    const out = join(dir, 'clean');
    await expectCut(campaign('clean', out, { extra: { allowPartial: true }, stage: () => ({ armed: () => true, left: 5 }) }), /clean evaluation images .*after 0 of 20 images/);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
  }, 120_000);

  it('transfer sweep: stops, writes nothing, and a resume finishes it', async () => {
    const out = join(dir, 'transfer');
    // After the last round, enough for the first ε (20 images), not the second.
    await expectCut(campaign('transfer', out, { stage: (_l, rounds) => ({ armed: () => rounds() === 2, left: 30 }) }), /transfer sweep \(untargeted, ε 0.3\).*after 20 of 40 images/);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    const done = await campaign('rich', out);
    expect(done.epsilons).toEqual(straight.epsilons);
    expect(readResults(out).partial).toEqual([]);
  }, 240_000);

  it('boundary first flips: stops, writes nothing, and a resume finishes them', async () => {
    const out = join(dir, 'distances');
    await expectCut(campaign('distances', out, { stage: (l) => ({ armed: seen(l, 'boundary: first flip'), left: 3 }) }), /first-flip search/);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    const done = await campaign('rich', out);
    expect(done.boundary!.images).toBe(10);
    expect(done.boundary!.victimDistances).toEqual(straight.boundary!.victimDistances);
    expect(done.boundary!.stats).toEqual(straight.boundary!.stats);
  }, 240_000);

  it('nearest boundary (RayS): stops instead of reporting the searches it had begun, and a resume finishes them', async () => {
    const out = join(dir, 'nearest');
    await expectCut(campaign('nearest', out, { stage: (l) => ({ armed: seen(l, 'boundary: nearest L∞ boundary of'), left: 30 }) }), /nearest L∞ boundary search \(RayS\)/);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    const done = await campaign('rich', out);
    expect(done.boundary!.nearest!.images).toBe(4);
    expect(done.boundary!.nearest!.victim).toEqual(straight.boundary!.nearest!.victim);
    expect(done.boundary!.nearest!.pearson).toEqual(straight.boundary!.nearest!.pearson);
  }, 240_000);

  it('boundary maps: stops, writes nothing, and a resume draws them all', async () => {
    const out = join(dir, 'maps');
    await expectCut(campaign('maps', out, { stage: (l) => ({ armed: seen(l, 'boundary: nearest L∞ boundary median'), left: 30 }) }), /boundary map 2 of 2.*after 25 of 50 images/);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    const done = await campaign('rich', out);
    expect(done.boundary!.maps.map((m) => m.victimLabels)).toEqual(straight.boundary!.maps.map((m) => m.victimLabels));
  }, 240_000);

  it('allowPartial: the cut measure is kept over the images measured and labelled partial', async () => {
    const out = join(dir, 'partial');
    const r = await campaign('partial', out, { extra: { allowPartial: true }, stage: (l) => ({ armed: seen(l, 'boundary: nearest L∞ boundary of'), left: 30 }) });
    const nearest = r.boundary!.nearest!;
    // RayS finished none of its 4 searches before the budget ran out, and the maps after it got nothing.
    expect(r.partial).toEqual([
      { measure: 'boundary.nearest', unit: 'images', measured: nearest.images, planned: 4, reason: 'budget_exhausted' },
      { measure: 'boundary.maps', unit: 'images', measured: 0, planned: 50, reason: 'budget_exhausted' },
    ]);
    expect(nearest.images).toBeLessThan(4);
    expect(nearest.victim).toHaveLength(nearest.images);
    expect(r.boundary!.maps).toHaveLength(0);
    expect(readResults(out).partial).toHaveLength(2);
    const html = await buildReport(fileRunStore(out), r);
    expect(html).toContain('<b>PARTIAL</b>: boundary.nearest measured 0 of 4 images');
    expect(html).toMatch(/planned vs paid<\/th><td>attack: 40 paid of 40 planned; measurement: [\d,]+ paid of at most 470 planned; key budget at the start: 0 used of 2,000/);
    // The transfer sweep before the cut is whole, and equal to the uncut run's.
    expect(r.epsilons).toEqual(straight.epsilons);
    const done = await campaign('rich', out);
    expect(done.partial).toEqual([]);
    expect(done.boundary!.nearest!.victim).toEqual(straight.boundary!.nearest!.victim);
  }, 240_000);

  it('refuses to start when the known budget cannot cover the plan, paying nothing; allowPartial starts anyway', async () => {
    const out = join(dir, 'poor');
    const e = await campaign('poor', out).then(() => null, (err: unknown) => err);
    expect((e as TransferlabError).code).toBe('budget_insufficient');
    expect((e as Error).message).toMatch(/needs at most 510 more victim queries but the key has 100 left/);
    expect((await budgetOfKey('poor')).used).toBe(0);
    expect(existsSync(join(out, 'results.json'))).toBe(false);
    // allowPartial: 40 attack + 20 clean + 40 transfer spend the 100; every boundary measure is then cut and listed.
    const r = await campaign('poor', out, { extra: { allowPartial: true } });
    expect(r.epsilons).toEqual(straight.epsilons);
    expect(r.partial!.map((p) => [p.measure, p.measured])).toEqual([['boundary.distances', 0], ['boundary.nearest', 0], ['boundary.maps', 0]]);
    expect(r.boundary!.victimDistances).toEqual([]);
    expect(r.boundary!.stats.victim.median).toBeNull();
    expect((await budgetOfKey('poor')).used).toBe(100);
  }, 120_000);
});
