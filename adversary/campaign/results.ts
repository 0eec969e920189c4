import {
  RESULTS_SCHEMA_VERSION,
  describeIssues,
  evaluationResultsSchema,
  parseEvaluationJson,
  type EvaluationResults,
  parseRunResultsJson,
  runResultsSchema,
  type RunResults,
  type TransferRunResults,
  type PlannedVsPaid,
} from '../../shared/protocol/index.js';
import { TransferlabError } from '../../shared/errors.js';
import type { RunStore } from '../run/store.js';
import type { ResultExtras } from '../report/pictures.js';
import { writeImageGrids } from '../report/run-pictures.js';
import type { QueryCounts } from '../oracle/oracle.js';
import type { BudgetCheck, QueryPlan } from '../run/query-plan.js';

export type { ResultExtras } from '../report/pictures.js';
export type { RunResults, QueryAttackRunResults, PlannedVsPaid } from '../../shared/protocol/index.js';

/**
 * results.json of a campaign or a white-box baseline: everything a report, a comparison or a script
 * needs from one run. Its shape is the contract's (shared/protocol/results.ts); this is that type.
 */
export type CampaignResults = TransferRunResults;

/** What a writer builds: a run's results without the version stamp, which putResults adds. */
export type Unversioned<R> = R extends unknown ? Omit<R, 'schemaVersion'> : never;

export const RESULTS_FILE = 'results.json';

/**
 * The one way results.json is written: validated against the contract first, so a writer that
 * drifts from it fails here, naming the field, and leaves no file a reader would refuse; then
 * written atomically through the run store. Returns what was written.
 */
export function putResults<R extends RunResults>(store: RunStore, results: Unversioned<R> | R): R {
  const parsed = runResultsSchema.safeParse({ ...results, schemaVersion: RESULTS_SCHEMA_VERSION });
  if (!parsed.success) {
    throw new TransferlabError('results_invalid', `refusing to write ${store.where(RESULTS_FILE)}: the ${results.kind} results do not fit the results contract:\n${describeIssues(parsed.error)}`, 500);
  }
  store.write(RESULTS_FILE, JSON.stringify(parsed.data, null, 2) + '\n');
  return parsed.data as R;
}

export const EVALUATION_FILE = 'evaluation.json';

/** evaluation.json (the defence evaluation's file), validated like results.json before it is written. */
export function putEvaluationResults(store: RunStore, evaluation: Omit<EvaluationResults, 'schemaVersion'>): EvaluationResults {
  const parsed = evaluationResultsSchema.safeParse({ ...evaluation, schemaVersion: RESULTS_SCHEMA_VERSION });
  if (!parsed.success) {
    throw new TransferlabError('results_invalid', `refusing to write ${store.where(EVALUATION_FILE)}: the evaluation does not fit the results contract:\n${describeIssues(parsed.error)}`, 500);
  }
  store.write(EVALUATION_FILE, JSON.stringify(parsed.data, null, 2) + '\n');
  return parsed.data;
}

/** An evaluation folder's evaluation.json read through the contract. */
export function readEvaluationResults(store: RunStore): EvaluationResults {
  const data = store.read(EVALUATION_FILE);
  if (!data) throw new TransferlabError('run_incomplete', `${store.where(EVALUATION_FILE)} not found`);
  return parseEvaluationJson(new TextDecoder().decode(data), store.where(EVALUATION_FILE));
}

/** A run's results.json read through the contract; the error names the file and what does not fit. */
export function readResults(store: RunStore, path = RESULTS_FILE): RunResults {
  const data = store.read(path);
  if (!data) throw new TransferlabError('run_incomplete', `${store.where(path)} not found: is it a finished run folder? (a run writes results.json when it completes)`);
  return parseRunResultsJson(new TextDecoder().decode(data), store.where(path));
}

/** A campaign's or white-box baseline's results.json; another kind is refused by name. */
export function readTransferResults(store: RunStore, path = RESULTS_FILE): CampaignResults {
  const r = readResults(store, path);
  if (r.kind === 'query-attack') throw new TransferlabError('run_mismatch', `${store.where(path)} holds a query-attack run, not a campaign or white-box baseline`);
  return r;
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
export function writeResults(store: RunStore, results: Unversioned<CampaignResults>, extras?: ResultExtras): CampaignResults {
  const grids = extras ? writeImageGrids(store, extras) : (results.images?.grids ?? []);
  const written = putResults<CampaignResults>(store, { ...results, images: { grids, maps: results.boundary?.maps.map((m) => m.image) ?? [] } });
  store.write('results.csv', resultsCsv(written));
  return written;
}
