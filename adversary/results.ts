import type { Rate } from '../shared/metrics.js';
import type { DatasetSummary } from '../shared/datasets/types.js';
import type { provenance } from '../shared/versions.js';
import type { BoundaryResults } from './boundary-run.js';
import type { CampaignConfig } from './config.js';
import type { QueryCounts, VictimInfo } from './oracle.js';
import type { RoundRecord } from './checkpoints.js';
import type { MemberRecord } from './ensemble.js';
import { putJson, type RunStore } from './run-store.js';
import type { ResultExtras } from './pictures.js';
import { writeImageGrids } from './run-pictures.js';
import type { PerClassTable, SweepPoint } from './transfer.js';
import type { PartialMeasure } from './measure-cut.js';
import type { BudgetCheck, PlanPart, QueryPlan } from './query-plan.js';

export type { ResultExtras } from './pictures.js';

/** results.json: everything a report, a comparison or a script needs from one run. */
export type CampaignResults = ReturnType<typeof provenance> & {
  kind: 'campaign' | 'whitebox';
  name: string;
  createdAt: string;
  victim: { url?: string; model?: string; info?: VictimInfo; arch?: string };
  /** The images the seed and evaluation sets were drawn from (their test part). */
  dataset?: DatasetSummary;
  config: CampaignConfig | Record<string, unknown>;
  queries: QueryCounts;
  victimCleanAccuracy: Rate;
  substituteCleanAccuracy: Rate;
  agreement: Rate;
  rounds: RoundRecord[];
  /** An ensemble's other members (the first is the rounds' substitute) and how they were combined. */
  ensemble?: { combine: string; members: MemberRecord[] };
  epsilons: SweepPoint[];
  perClass: PerClassTable[];
  boundary: BoundaryResults | null;
  /** Victim queries planned from the settings before the run (an upper bound where `atMost`) beside those paid, by purpose. */
  queryPlan?: PlannedVsPaid;
  /** Measures the key's budget cut short (allowPartial): their figures are over the `measured` images only. Empty: all whole. */
  partial?: PartialMeasure[];
  /** PNG pictures, relative to the run folder (set by writeResults). */
  images?: { grids: string[]; maps: string[] };
  durationSeconds: number;
  phases: Record<string, number>;
};

export interface PlannedVsPaid {
  attack: { planned: number; atMost: boolean; paid: number };
  measurement: { planned: number; atMost: boolean; paid: number };
  parts: PlanPart[];
  /** The key's budget before the first paid query (GET /v1/budget); null: the victim did not say. */
  budget: { used: number; limit: number | null } | null;
}

export function plannedVsPaid(plan: QueryPlan, paid: QueryCounts, budget: BudgetCheck | null): PlannedVsPaid {
  return {
    attack: { ...plan.attack, paid: paid.attack },
    measurement: { ...plan.measurement, paid: paid.measurement },
    parts: plan.parts,
    budget: budget?.known && budget.used !== null ? { used: budget.used, limit: budget.limit } : null,
  };
}

const csvCell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'number' ? String(Number(v.toFixed(6))) : String(v));

export function resultsCsv(r: CampaignResults): string {
  const cols = ['mode', 'epsilon', 'misclassificationRate', 'transferRate', 'targetedSuccessRate', 'craftModelSuccessRate', 'measurementQueries', 'meanL2'] as const;
  const rows = r.epsilons.map((p) => cols.map((c) => csvCell(p[c])).join(','));
  return [cols.join(','), ...rows].join('\n') + '\n';
}

/** Writes results.json and results.csv; with extras, first the image grids, whose paths it records in `results.images`. */
export function writeResults(store: RunStore, results: CampaignResults, extras?: ResultExtras): void {
  const grids = extras ? writeImageGrids(store, extras) : (results.images?.grids ?? []);
  results.images = { grids, maps: results.boundary?.maps.map((m) => m.image) ?? [] };
  putJson(store, 'results.json', results);
  store.write('results.csv', resultsCsv(results));
}
