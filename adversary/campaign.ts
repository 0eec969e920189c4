import type { CampaignConfig } from './config.js';
import type { CountingOracle } from './oracle-core.js';
import type { CampaignResults } from './results.js';
import { runStore, type RunStore } from './run-store.js';
import { begin, boundary, budget, ensemble, report, rounds, seed, select, transfer, type CampaignHooks } from './campaign-steps.js';

export type { CampaignHooks } from './campaign-steps.js';

/**
 * One black-box campaign, as a pipeline of named steps over a run store (campaign-steps.ts):
 * budget (the planned cost printed and checked against the key's budget) → select (config, victim, seed and evaluation sets) → seed (labels, or resume) → rounds (the
 * substitute: fit + Jacobian augmentation) → ensemble → transfer (craft on the substitute, ask the
 * victim) → boundary → report (pictures, results.json). The steps touch no file: what they keep
 * goes to the store, a run folder on disk (a path) or one in memory (memoryRunStore).
 */
export async function runCampaign(config: CampaignConfig, run: RunStore | string, oracle: CountingOracle, hooks: CampaignHooks): Promise<CampaignResults> {
  const store = runStore(run);
  const checked = await budget(begin(config, oracle, hooks), store);
  const selected = await select(checked, store);
  const seeded = await seed(selected, store);
  const fitted = await rounds(seeded, store);
  const combined = await ensemble(fitted, store);
  const transferred = await transfer(combined, store);
  const measured = await boundary(transferred, store);
  const results = await report(measured, store);
  fitted.model.dispose();
  for (const m of combined.members.models) m.dispose();
  return results;
}
