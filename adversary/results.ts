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
  /** PNG pictures, relative to the run folder (set by writeResults). */
  images?: { grids: string[]; maps: string[] };
  durationSeconds: number;
  phases: Record<string, number>;
};

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
