/**
 * `query-attack`: a decision-based attack on the victim itself, through its label API, as a run
 * folder like a campaign's: config.json (never the key), answers.jsonl + queries.jsonl (the answer
 * cache and ledger), results.json, images.json (per image: distances, queries, trace) and
 * adversarial.u8 (each image's best adversarial example as 8-bit pixels, row-major H×W×C as the
 * victim takes them; zeros when none).
 *
 * A pipeline of named steps over the run store (steps.ts), its first two the campaign's own
 * (run/steps.ts): the planned cost against the key's budget, then the victim's description, the
 * attacker's dataset (any shape the victim serves) and the campaign's evaluation images.
 *
 * Resuming replays the seeded searches over the answer cache: every probe already paid for is
 * answered from it for free, so the run continues where it stopped without paying twice.
 */
import type { CountingOracle } from '../oracle/core.js';
import { budget, clockedRun, select } from '../run/steps.js';
import type { RunStore } from '../run/store.js';
import type { QueryAttackConfig, QueryAttackResults } from './config.js';
import { aim, begin, report, search } from './steps.js';

export { queryAttackPlan, queryAttackSchema, resolveQueryAttackConfig } from './config.js';
export type { ImageRecord, QueryAttackConfig, QueryAttackInput, QueryAttackResults } from './config.js';

export async function runQueryAttackCampaign(config: QueryAttackConfig, folder: RunStore | string, oracle: CountingOracle, log: (line: string) => void): Promise<QueryAttackResults> {
  return clockedRun(folder, (clock) => begin(config, oracle, log, clock), async (step, begun, store) => {
    const checked = await step(budget, begun);
    const selected = await step(select, checked);
    const aimed = await step(aim, selected);
    const searched = await step(search, aimed);
    return report(searched, store);
  });
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '  –  ' : `${(100 * v).toFixed(1)}%`);

/** The terminal summary: success against queries per image, per ε. */
export function queryAttackSummary(r: QueryAttackResults): string {
  const eps = r.config.epsilons;
  const head = ['queries/image', ...eps.map((e) => `ε ${e.toFixed(2)}`), 'median L∞', 'median L2'];
  const rows = r.curve.map((p) => [
    String(p.queriesPerImage),
    ...eps.map((e) => pct(p.success[e.toFixed(2)])),
    p.medianLinf === null ? '–' : p.medianLinf.toFixed(3),
    p.medianL2 === null ? '–' : p.medianL2.toFixed(3),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) => cells.map((v, c) => v.padStart(widths[c])).join('  ');
  const med = r.epsilons.map((e) => `ε ${e.epsilon}: success ${pct(e.success)}, median ${e.medianQueries ?? '–'} queries`).join('; ');
  return [line(head), ...rows.map(line), '', med].join('\n');
}
