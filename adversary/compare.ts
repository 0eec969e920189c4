import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { TransferlabError } from '../shared/errors.js';
import { epsilonCurves, roundsChart, svgOf } from './charts.js';
import { curvePoints, roundPoints } from './report.js';
import { bestTargeted, esc, num, page, pct, pointNear, SECRET_KEYS, seconds, table } from './report-html.js';
import type { CampaignResults } from './results.js';
import { writeFileAtomic } from './run-store.js';
import { runStamp } from '../shared/stamp.js';

/**
 * `compare DIR…`: the key figures of finished runs side by side, plus only the settings that
 * differ between them — a comparison is read for its differences, and a full config dump per
 * run would bury them. Writes compare.csv (for spreadsheets and scripts) and compare.html (the
 * runs' curves on shared axes, so a visual gap is a real gap).
 */
export interface CompareRow {
  run: string;
  dir: string;
  kind: CampaignResults['kind'];
  victimCleanAccuracy: number | null;
  agreement: number | null;
  attackQueries: number;
  measurementQueries: number;
  /** The ε the two figures below are taken at: 0.3, or the nearest the run measured. */
  epsilon: number | null;
  misclassificationRate: number | null;
  transferRate: number | null;
  bestTargetedSuccessRate: number | null;
  bestTargetedEpsilon: number | null;
  durationSeconds: number;
  /** Only the settings that differ between the compared runs, as display strings ('' = not set). */
  settings: Record<string, string>;
}

export interface CompareResult {
  rows: CompareRow[];
  /** The dotted setting names that differ between the runs (the keys of every row's `settings`). */
  differing: string[];
  outDir: string;
  csvPath: string;
  htmlPath: string;
}

export function readRun(dir: string): CampaignResults {
  const path = join(dir, 'results.json');
  if (!existsSync(path)) {
    throw new TransferlabError('run_incomplete', `${dir} has no results.json: is it a finished run folder? (a run writes results.json when it completes)`);
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as CampaignResults;
  } catch (e) {
    throw new TransferlabError('run_unreadable', `cannot read ${path}: ${(e as Error).message}`);
  }
}

/**
 * A run's settings as dotted keys. Provenance that changes results or speed (backend, threads)
 * counts as a setting; the output folder and secrets never do.
 */
function flatSettings(r: CampaignResults): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (v: unknown, key: string) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k);
    } else if (!SECRET_KEYS.has(key.split('.').at(-1) ?? '') && key !== 'out') {
      out.set(key, Array.isArray(v) ? v.join(' ') : String(v));
    }
  };
  walk(r.config, '');
  out.set('kind', r.kind);
  out.set('backend', r.backend);
  out.set('threads', String(r.threads));
  return out;
}

export function differingSettings(runs: CampaignResults[]): { keys: string[]; values: Record<string, string>[] } {
  const flat = runs.map(flatSettings);
  const all = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  const keys = all.filter((k) => new Set(flat.map((m) => m.get(k) ?? '')).size > 1);
  return { keys, values: flat.map((m) => Object.fromEntries(keys.map((k) => [k, m.get(k) ?? '']))) };
}

/** Run names for tables and legends: folder names, or the paths when two folders share a name. */
function names(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(resolve(d)));
  return base.map((b, i) => (base.filter((x) => x === b).length > 1 ? dirs[i] : b));
}

export function compareRows(dirs: string[], runs: CampaignResults[]): { rows: CompareRow[]; differing: string[] } {
  const { keys, values } = differingSettings(runs);
  const runNames = names(dirs);
  const rows = runs.map((r, i): CompareRow => {
    const u = pointNear(r.epsilons, 'untargeted');
    const best = bestTargeted(r.epsilons);
    return {
      run: runNames[i],
      dir: dirs[i],
      kind: r.kind,
      victimCleanAccuracy: r.victimCleanAccuracy,
      agreement: r.agreement,
      attackQueries: r.queries.attack,
      measurementQueries: r.queries.measurement,
      epsilon: u?.epsilon ?? null,
      misclassificationRate: u?.misclassificationRate ?? null,
      transferRate: u?.transferRate ?? null,
      bestTargetedSuccessRate: best?.rate ?? null,
      bestTargetedEpsilon: best?.epsilon ?? null,
      durationSeconds: r.durationSeconds,
      settings: values[i],
    };
  });
  return { rows, differing: keys };
}

/** Display columns: header and how each row shows it; shared by the terminal table and the HTML page. */
function columns(rows: CompareRow[]): [string, (r: CompareRow) => string, boolean][] {
  const settingKeys = [...new Set(rows.flatMap((r) => Object.keys(r.settings)))];
  return [
    ['run', (r) => r.run, false],
    ['victim acc', (r) => pct(r.victimCleanAccuracy), true],
    ['agreement', (r) => pct(r.agreement), true],
    ['attack q', (r) => num(r.attackQueries), true],
    ['measure q', (r) => num(r.measurementQueries), true],
    ['ε', (r) => num(r.epsilon), true],
    ['misclass', (r) => pct(r.misclassificationRate), true],
    ['transfer', (r) => pct(r.transferRate), true],
    ['best targeted', (r) => (r.bestTargetedSuccessRate === null ? '—' : `${pct(r.bestTargetedSuccessRate)} @${num(r.bestTargetedEpsilon)}`), true],
    ['duration', (r) => seconds(r.durationSeconds), true],
    ...settingKeys.map((k): [string, (r: CompareRow) => string, boolean] => [k, (r) => r.settings[k] ?? '', false]),
  ];
}

/** An aligned plain-text table (numbers right-aligned), for the terminal. */
export function formatTable(rows: CompareRow[]): string {
  const cols = columns(rows);
  const cells = [cols.map(([h]) => h), ...rows.map((r) => cols.map(([, f]) => f(r)))];
  // Width in code points, so 'ε' and '—' count as one column each.
  const len = (s: string) => [...s].length;
  const widths = cols.map((_, c) => Math.max(...cells.map((row) => len(row[c]))));
  const pad = (s: string, c: number) => (cols[c][2] ? ' '.repeat(widths[c] - len(s)) + s : s + ' '.repeat(widths[c] - len(s)));
  const lines = cells.map((row) => row.map((s, c) => pad(s, c)).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((w) => '─'.repeat(w)).join('  '));
  return lines.join('\n');
}

const csvCell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : typeof v === 'number' ? String(Number(v.toFixed(6))) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export const CSV_COLUMNS = [
  'run', 'dir', 'kind', 'victimCleanAccuracy', 'agreement', 'attackQueries', 'measurementQueries', 'epsilon',
  'misclassificationRate', 'transferRate', 'bestTargetedSuccessRate', 'bestTargetedEpsilon', 'durationSeconds',
] as const;

/** Raw numbers (rates as fractions) for machines; differing settings follow as extra columns. */
export function compareCsv(rows: CompareRow[], differing: string[]): string {
  const head = [...CSV_COLUMNS, ...differing];
  const lines = rows.map((r) => [...CSV_COLUMNS.map((c) => csvCell(r[c])), ...differing.map((k) => csvCell(r.settings[k]))].join(','));
  return [head.map(csvCell).join(','), ...lines].join('\n') + '\n';
}

async function compareHtml(rows: CompareRow[], runs: CampaignResults[]): Promise<string> {
  const cols = columns(rows);
  const tbl = table(cols.map(([h]) => esc(h)), rows.map((r) => cols.map(([, f]) => esc(f(r)))));
  const curves = runs.flatMap((r, i) => curvePoints(r.epsilons, rows[i].run));
  const rounds = runs.flatMap((r, i) => roundPoints(r, rows[i].run));
  const parts = [
    `<h1>transferlab comparison of ${esc(rows.length)} runs</h1>`,
    `<p class="sub">${esc(new Date().toISOString())} · misclassification and transfer at ε 0.3 (or the nearest ε a run measured)</p>`,
    '<h2>Key figures and the settings that differ</h2>',
    tbl,
    '<h2>Attack success against ε</h2>',
    curves.length ? `<figure class="chart">${await svgOf(epsilonCurves(curves))}</figure>` : '<p class="note">No sweep point has a defined rate.</p>',
  ];
  if (rounds.length) parts.push('<h2>Substitute training</h2>', `<figure class="chart">${await svgOf(roundsChart(rounds, true))}</figure>`);
  const report = (d: string) => (existsSync(join(d, 'report.html')) ? `<code>${esc(resolve(d, 'report.html'))}</code>` : '—');
  parts.push('<h2>Run folders</h2>', table(['run', 'folder', 'report'], rows.map((r) => [esc(r.run), `<code>${esc(resolve(r.dir))}</code>`, report(r.dir)])));
  return page(`transferlab: comparison of ${rows.length} runs`, parts.join('\n'));
}


/** Read the runs, write compare.csv and compare.html into `out`, and return the table. */
export async function compareRuns(dirs: string[], out?: string): Promise<CompareResult> {
  if (dirs.length === 0) throw new TransferlabError('invalid_arguments', 'compare needs at least one run folder');
  const runs = dirs.map(readRun);
  const { rows, differing } = compareRows(dirs, runs);
  const outDir = out ?? join('runs', `compare-${runStamp()}`);
  mkdirSync(outDir, { recursive: true });
  const csvPath = join(outDir, 'compare.csv');
  const htmlPath = join(outDir, 'compare.html');
  writeFileAtomic(csvPath, compareCsv(rows, differing));
  writeFileAtomic(htmlPath, await compareHtml(rows, runs));
  return { rows, differing, outDir, csvPath, htmlPath };
}
