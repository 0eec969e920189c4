import { join } from 'node:path';
import type { Rate } from '../shared/metrics.js';
import type { DatasetSummary, ImageSet } from '../shared/datasets/types.js';
import type { provenance } from '../shared/versions.js';
import type { BoundaryResults } from './boundary-run.js';
import type { CampaignConfig } from './config.js';
import type { QueryCounts, VictimInfo } from './oracle.js';
import type { RoundRecord } from './run-folder.js';
import { writeFileAtomic, writeJson } from './run-folder.js';
import { writeImageGrids } from './pictures.js';
import type { PerClassTable, SweepOutcome, SweepPoint } from './transfer.js';

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
  epsilons: SweepPoint[];
  perClass: PerClassTable[];
  boundary: BoundaryResults | null;
  /** PNG pictures, relative to the run folder (set by writeResults). */
  images?: { grids: string[]; maps: string[] };
  durationSeconds: number;
  phases: Record<string, number>;
};

export interface ResultExtras {
  evalSet: ImageSet;
  /** Class count of the victim's output (legends, per-class rows). */
  classes: number;
  outcome: SweepOutcome;
  targets: Int32Array;
  /** The victim's labels of the clean evaluation images (the image grids show them under the clean digits). */
  cleanVictim?: Int32Array;
}

const csvCell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'number' ? String(Number(v.toFixed(6))) : String(v));

export function resultsCsv(r: CampaignResults): string {
  const cols = ['mode', 'epsilon', 'misclassificationRate', 'transferRate', 'targetedSuccessRate', 'craftModelSuccessRate', 'measurementQueries'] as const;
  const rows = r.epsilons.map((p) => cols.map((c) => csvCell(p[c])).join(','));
  return [cols.join(','), ...rows].join('\n') + '\n';
}

/** Writes results.json and results.csv; with extras, first the image grids, whose paths it records in `results.images`. */
export function writeResults(runDir: string, results: CampaignResults, extras?: ResultExtras): void {
  const grids = extras ? writeImageGrids(runDir, extras) : (results.images?.grids ?? []);
  results.images = { grids, maps: results.boundary?.maps.map((m) => m.image) ?? [] };
  writeJson(join(runDir, 'results.json'), results);
  writeFileAtomic(join(runDir, 'results.csv'), resultsCsv(results));
}
