import type { CampaignConfig } from './config.js';
import type { CountingOracle } from '../oracle/core.js';
import type { CampaignResults } from './results.js';
import { clockedRun } from '../run/steps.js';
import type { RunStore } from '../run/store.js';
import { begin, boundary, budget, ensemble, report, rounds, seed, select, transfer, type CampaignHooks } from './steps.js';

export type { CampaignHooks } from './steps.js';

/**
 * One black-box campaign, as a pipeline of named steps over a run store (steps.ts):
 * budget (the planned cost printed and checked against the key's budget) → select (config, victim, seed and evaluation sets) → seed (labels, or resume) → rounds (the
 * substitute: fit + Jacobian augmentation) → ensemble → transfer (craft on the substitute, ask the
 * victim) → boundary → report (pictures, results.json). The steps touch no file: what they keep
 * goes to the store, a run folder on disk (a path) or one in memory (memoryRunStore).
 */
export async function runCampaign(config: CampaignConfig, run: RunStore | string, oracle: CountingOracle, hooks: CampaignHooks): Promise<CampaignResults> {
  return clockedRun(run, (clock) => begin(config, oracle, hooks, clock), async (step, begun, store) => {
    const checked = await step(budget, begun);
    const selected = await step(select, checked);
    const seeded = await step(seed, selected);
    const fitted = await step(rounds, seeded);
    const combined = await step(ensemble, fitted);
    const transferred = await step(transfer, combined);
    const measured = await step(boundary, transferred);
    const results = await report(measured, store);
    fitted.model.dispose();
    for (const m of combined.members.models) m.dispose();
    return results;
  });
}
