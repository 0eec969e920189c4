import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CampaignInput } from '../adversary/campaign/config.js';
import { campaignAgainst } from '../scripts/lab/evaluate.js';
import { initBackend } from '../shared/engine/backend.js';
import { ensureTestVictim } from './fixtures.js';

/**
 * The defence evaluation's campaign against a served victim with a query budget: a budget too small
 * for the plan stops it with a clear error and nothing paid; with allowPartial the transfer sweep the
 * budget cuts is kept, its missing ε absent and the cut listed; running again on the same run folder
 * with a larger budget resumes and finishes it.
 */
const TINY: CampaignInput = { seedSize: 20, rounds: 2, epochs: 1, substitute: 'papernot-mlp', evalSize: 20, targeted: false };
// Attack 40 (20 seed + 20 augmented), clean labels 20, transfer 2 ε × 20: 100 planned in all.
const EPSILONS = [0.1, 0.3];

let model: string;
let dir: string;

beforeAll(async () => {
  model = await ensureTestVictim();
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-lab-budget-'));
}, 300_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('defence evaluation: a campaign against a budgeted victim', () => {
  it('stops before paying when the budget cannot cover the plan, naming the model and how to resume', async () => {
    const runDir = join(dir, 'poor');
    const e = await campaignAgainst(model, runDir, { epsilons: EPSILONS, seed: 2, overrides: TINY, victimBudget: 70 }).then(() => null, (err: unknown) => err);
    expect(e).toMatchObject({ code: 'budget_insufficient' });
    expect((e as Error).message).toMatch(new RegExp(`campaign against ${model.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} stopped: this run needs 100 more victim queries but the key has 70 left`));
    expect((e as Error).message).toMatch(/same --out/);
    expect(existsSync(join(runDir, 'results.json'))).toBe(false);
  }, 240_000);

  it('allowPartial keeps the ε measured before the cut, labelled; the same folder with more budget finishes it', async () => {
    const runDir = join(dir, 'partial');
    // 40 attack + 20 clean + 20 for the first ε: the second ε is refused.
    const cut = await campaignAgainst(model, runDir, { epsilons: EPSILONS, seed: 2, overrides: { ...TINY, allowPartial: true }, victimBudget: 80 });
    expect(cut.points.map((p) => p.epsilon)).toEqual([0.1]);
    expect(cut.partial).toEqual([{ measure: 'transfer', unit: 'images', measured: 20, planned: 40, reason: 'budget_exhausted' }]);
    const done = await campaignAgainst(model, runDir, { epsilons: EPSILONS, seed: 2, overrides: TINY, victimBudget: 200 });
    expect(done.partial).toEqual([]);
    expect(done.points.map((p) => p.epsilon)).toEqual(EPSILONS);
    expect(done.points[0]).toEqual(cut.points[0]);
    expect(done.attackQueries).toBe(40);
  }, 240_000);
});
