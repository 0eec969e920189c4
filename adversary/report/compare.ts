import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { TransferlabError } from '../../shared/errors.js';
import type { QueryAttackRunResults, RunResults } from '../../shared/protocol/index.js';
import { runStamp } from '../../shared/stamp.js';
import { budgetCurves, epsilonCurves, roundsChart, svgOf, type BudgetPoint } from './charts.js';
import { columns, compareCsv, compareRows, runNames, type Compared, type CompareRow } from './compare-rows.js';
import { curvePoints, roundPoints } from './report.js';
import { esc, page, table } from './html.js';
import { EVALUATION_FILE, readEvaluationResults, readResults, RESULTS_FILE } from '../campaign/results.js';
import { fileRunStore } from '../run/store.js';

export { compareCsv, compareRows, CSV_COLUMNS, differingSettings, formatTable, type Compared, type CompareRow } from './compare-rows.js';

/**
 * `compare DIR…`: the key figures of finished runs of any kind side by side (campaign, white-box
 * baseline, query attack), plus only the settings that differ between them — a comparison is read
 * for its differences, and a full config dump per run would bury them. Every results.json is read
 * through the results contract (shared/protocol/results.ts), so a bad file is named with the field
 * that does not fit before anything is written. Writes compare.csv (for spreadsheets and scripts)
 * and compare.html (the runs' curves on shared axes, so a visual gap is a real gap), both at once:
 * the output folder appears whole or not at all.
 */
export interface CompareResult {
  rows: CompareRow[];
  /** The dotted setting names that differ between the runs (the keys of every row's `settings`). */
  differing: string[];
  outDir: string;
  csvPath: string;
  htmlPath: string;
}

const OUTPUT_FILES = ['compare.csv', 'compare.html'];

function checkRunFolder(dir: string): void {
  if (!existsSync(dir)) throw new TransferlabError('run_missing', `${dir} does not exist: compare takes the folders of finished runs`);
  if (!statSync(dir).isDirectory()) throw new TransferlabError('run_missing', `${dir} is a file, not a run folder: compare takes the folders of finished runs`);
}

/** A finished run's results.json, validated; the error says which folder and what is wrong with it. */
export function readRun(dir: string): RunResults {
  checkRunFolder(dir);
  if (!existsSync(join(dir, RESULTS_FILE))) {
    throw new TransferlabError('run_incomplete', `${dir} has no results.json: is it a finished run folder? (a run writes results.json when it completes)`);
  }
  return readResults(fileRunStore(dir));
}

/** What compare reads from a folder: a run's results.json, or else a defence evaluation's evaluation.json. */
export function readCompared(dir: string): Compared {
  checkRunFolder(dir);
  if (!existsSync(join(dir, RESULTS_FILE)) && existsSync(join(dir, EVALUATION_FILE))) return readEvaluationResults(fileRunStore(dir));
  return readRun(dir);
}

/** A query attack's success by budget at each ε it measured, as chart points. */
function budgetPoints(r: QueryAttackRunResults, series: string): BudgetPoint[] {
  return r.curve.flatMap((p) =>
    Object.entries(p.success).flatMap(([epsilon, value]) => (value === null ? [] : [{ queriesPerImage: p.queriesPerImage, epsilon, value, series }])),
  );
}

async function compareHtml(dirs: string[], rows: CompareRow[], runs: Compared[]): Promise<string> {
  const cols = columns(rows);
  const tbl = table(cols.map(([h]) => esc(h)), rows.map((r) => cols.map(([, f]) => esc(f(r)))));
  // Each chart draws the kinds that measure it; the table above has every run.
  // An evaluation gives a row per model, so the charts' series are named by folder, not by row.
  const names = runNames(dirs);
  const series = (i: number) => names[i];
  const curves = runs.flatMap((r, i) => (r.kind === 'campaign' || r.kind === 'whitebox' ? curvePoints(r.epsilons, series(i)) : []));
  const rounds = runs.flatMap((r, i) => (r.kind === 'campaign' || r.kind === 'whitebox' ? roundPoints(r, series(i)) : []));
  const budgets = runs.flatMap((r, i) => (r.kind === 'query-attack' ? budgetPoints(r, series(i)) : []));
  const transferRuns = runs.filter((r) => r.kind === 'campaign' || r.kind === 'whitebox').length;
  const evaluations = runs.filter((r) => r.kind === 'evaluation').length;
  const parts = [
    `<h1>transferlab comparison of ${esc(rows.length)} runs</h1>`,
    `<p class="sub">${esc(new Date().toISOString())} · misclassification and transfer at ε 0.3 (or the nearest ε a run measured); ` +
      'a query attack’s figures at its whole budget</p>',
    '<h2>Key figures and the settings that differ</h2>',
    tbl,
  ];
  if (transferRuns) {
    parts.push('<h2>Transfer attack success against ε</h2>');
    parts.push(curves.length ? `<figure class="chart">${await svgOf(epsilonCurves(curves))}</figure>` : '<p class="note">No sweep point has a defined rate.</p>');
  }
  if (rounds.length) parts.push('<h2>Substitute training</h2>', `<figure class="chart">${await svgOf(roundsChart(rounds, true))}</figure>`);
  if (budgets.length) {
    parts.push('<h2>Query attacks: success against queries per image</h2>', `<figure class="chart">${await svgOf(budgetCurves(budgets))}</figure>`);
  }
  if (evaluations) {
    parts.push('<p class="note">A defence evaluation gives a row per model: white-box accuracy under its worst-case attack, and its campaign’s figures when one ran; its curves are in its evaluation.html.</p>');
  }
  const page1 = (d: string) => ['report.html', 'evaluation.html'].find((f) => existsSync(join(d, f)));
  const report = (d: string) => (page1(d) ? `<code>${esc(resolve(d, page1(d)!))}</code>` : '—');
  parts.push('<h2>Run folders</h2>', table(['run', 'kind', 'folder', 'report'], rows.map((r) => [esc(r.run), esc(r.kind), `<code>${esc(resolve(r.dir))}</code>`, report(r.dir)])));
  return page(`transferlab: comparison of ${rows.length} runs`, parts.join('\n'));
}

/** An output folder compare may (re)place: absent, or holding nothing but an earlier comparison. */
function checkOutDir(outDir: string): void {
  if (!existsSync(outDir)) return;
  if (!statSync(outDir).isDirectory()) throw new TransferlabError('invalid_arguments', `--out ${outDir} is a file; compare writes a folder`);
  const other = readdirSync(outDir).filter((f) => !OUTPUT_FILES.includes(f));
  if (other.length) {
    throw new TransferlabError('invalid_arguments', `--out ${outDir} already holds other files (${other.slice(0, 3).join(', ')}${other.length > 3 ? ', …' : ''}); compare replaces its folder whole: choose another --out`);
  }
}

/** Read the runs, write compare.csv and compare.html into `out` (one folder renamed into place), and return the table. */
export async function compareRuns(dirs: string[], out?: string): Promise<CompareResult> {
  if (dirs.length === 0) throw new TransferlabError('invalid_arguments', 'compare needs at least one run folder');
  const outDir = out ?? join('runs', `compare-${runStamp()}`);
  checkOutDir(outDir);
  const runs = dirs.map(readCompared);
  const { rows, differing } = compareRows(dirs, runs);
  // Everything rendered before anything is written: a failure leaves no folder behind.
  const files = { 'compare.csv': compareCsv(rows, differing), 'compare.html': await compareHtml(dirs, rows, runs) };
  fileRunStore(dirname(resolve(outDir))).writeFolder(basename(resolve(outDir)), files);
  return { rows, differing, outDir, csvPath: join(outDir, 'compare.csv'), htmlPath: join(outDir, 'compare.html') };
}
