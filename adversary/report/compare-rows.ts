import { basename, resolve } from 'node:path';
import type { EvaluatedModel, EvaluationResults, QueryAttackRunResults, RunKind, RunResults } from '../../shared/protocol/index.js';
import { bestTargeted, num, pct, pointNear, SECRET_KEYS, seconds } from './html.js';

/**
 * compare's table: one row of key figures per run, whatever its kind, plus only the settings that
 * differ between the runs. A figure a kind does not measure is null (shown as —), never a guess:
 * a query attack has no substitute (no agreement, no transfer), a transfer run no query budget. A
 * defence evaluation (evaluation.json) gives one row per model it evaluated.
 */
export interface CompareRow {
  run: string;
  dir: string;
  kind: RunKind | 'evaluation';
  victimCleanAccuracy: number | null;
  agreement: number | null;
  attackQueries: number | null;
  measurementQueries: number | null;
  /** The ε the figures below are taken at: 0.3, or the nearest the run measured. */
  epsilon: number | null;
  misclassificationRate: number | null;
  transferRate: number | null;
  bestTargetedSuccessRate: number | null;
  bestTargetedEpsilon: number | null;
  /** A query attack's share of images with an adversarial example within ε, at its whole budget. */
  querySuccessRate: number | null;
  /** A query attack's median, over the images, of the queries each spent. */
  medianQueriesPerImage: number | null;
  /** A defence evaluation's accuracy under its strongest white-box attack (the worst case per image) at ε. */
  whiteboxAccuracy: number | null;
  /** The whole run's working time, over all its sessions. */
  durationSeconds: number;
  /** Only the settings that differ between the compared runs, as display strings ('' = not set). */
  settings: Record<string, string>;
}

/**
 * A run's settings as dotted keys. Provenance that changes results or speed (backend, threads)
 * counts as a setting; the output folder and secrets never do, nor the kind (a column of its own).
 */
function flatSettings(settings: unknown, backend: string, threads: number): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (v: unknown, key: string) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k);
    } else if (!SECRET_KEYS.has(key.split('.').at(-1) ?? '') && key !== 'out') {
      out.set(key, Array.isArray(v) ? v.join(' ') : String(v));
    }
  };
  walk(settings, '');
  out.set('backend', backend);
  out.set('threads', String(threads));
  return out;
}

function differing(flat: Map<string, string>[]): { keys: string[]; values: Record<string, string>[] } {
  const all = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
  const keys = all.filter((k) => new Set(flat.map((m) => m.get(k) ?? '')).size > 1);
  return { keys, values: flat.map((m) => Object.fromEntries(keys.map((k) => [k, m.get(k) ?? '']))) };
}

export const differingSettings = (runs: RunResults[]) => differing(runs.map((r) => flatSettings(r.config, r.backend, r.threads)));

/** Run names for tables and legends: folder names, or the paths when two folders share a name. */
export function runNames(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(resolve(d)));
  return base.map((b, i) => (base.filter((x) => x === b).length > 1 ? dirs[i] : b));
}

/** The ε a query attack measured nearest 0.3 (ties to the smaller), and its figures at the whole budget. */
function queryFigures(r: QueryAttackRunResults) {
  const near = [...r.epsilons].sort((a, b) => Math.abs(a.epsilon - 0.3) - Math.abs(b.epsilon - 0.3) || a.epsilon - b.epsilon)[0];
  const last = r.curve.at(-1);
  return {
    epsilon: near?.epsilon ?? null,
    misclassificationRate: near && last ? (last.misclassification[near.epsilon.toFixed(2)] ?? null) : null,
    querySuccessRate: near?.success ?? null,
  };
}

function keyFigures(r: RunResults): Omit<CompareRow, 'run' | 'dir' | 'settings'> {
  const shared = { kind: r.kind, victimCleanAccuracy: r.victimCleanAccuracy, attackQueries: r.queries.attack, measurementQueries: r.queries.measurement, durationSeconds: r.durationSeconds };
  if (r.kind === 'query-attack') {
    return { ...shared, ...queryFigures(r), agreement: null, transferRate: null, bestTargetedSuccessRate: null, bestTargetedEpsilon: null, medianQueriesPerImage: r.medianQueriesPerImage, whiteboxAccuracy: null };
  }
  const u = pointNear(r.epsilons, 'untargeted');
  const best = bestTargeted(r.epsilons);
  return {
    ...shared,
    agreement: r.agreement,
    epsilon: u?.epsilon ?? null,
    misclassificationRate: u?.misclassificationRate ?? null,
    transferRate: u?.transferRate ?? null,
    bestTargetedSuccessRate: best?.rate ?? null,
    bestTargetedEpsilon: best?.epsilon ?? null,
    querySuccessRate: null,
    medianQueriesPerImage: null,
    whiteboxAccuracy: null,
  };
}

/** One evaluated model's figures at the evaluation's ε nearest 0.3: white-box worst case, and its campaign's when one ran. */
function evaluatedFigures(e: EvaluationResults, m: EvaluatedModel): Omit<CompareRow, 'run' | 'dir' | 'settings'> {
  const epsilon = [...e.settings.epsilons].sort((a, b) => Math.abs(a - 0.3) - Math.abs(b - 0.3) || a - b)[0] ?? null;
  const at = (x: number) => epsilon !== null && Math.abs(x - epsilon) < 1e-9;
  const worst = m.whitebox.find((p) => p.attack === 'worst' && at(p.epsilon));
  const point = m.campaign?.points.find((p) => at(p.epsilon));
  return {
    kind: 'evaluation',
    victimCleanAccuracy: m.cleanAccuracy,
    agreement: m.campaign?.agreement ?? null,
    // White-box attacks ask the victim nothing; the campaign's measurement queries are in its own run folder.
    attackQueries: m.campaign?.attackQueries ?? 0,
    measurementQueries: null,
    epsilon,
    misclassificationRate: point?.misclassificationRate ?? null,
    transferRate: point?.transferRate ?? null,
    bestTargetedSuccessRate: null,
    bestTargetedEpsilon: null,
    querySuccessRate: null,
    medianQueriesPerImage: null,
    whiteboxAccuracy: worst?.accuracy ?? null,
    durationSeconds: m.whiteboxSeconds + (m.campaign?.durationSeconds ?? 0),
  };
}

/** What compare reads from a folder: a run's results.json, or a defence evaluation's evaluation.json. */
export type Compared = RunResults | EvaluationResults;


export function compareRows(dirs: string[], runs: Compared[]): { rows: CompareRow[]; differing: string[] } {
  const named = runNames(dirs);
  const entries = runs.flatMap((r, i) =>
    r.kind === 'evaluation'
      ? r.models.map((m) => ({
          row: { run: `${named[i]}/${basename(m.model)}`, dir: dirs[i], ...evaluatedFigures(r, m) },
          settings: flatSettings({ ...r.settings, model: m.model, arch: m.arch, dataset: m.dataset, defence: m.defence }, r.backend, r.threads),
        }))
      : [{ row: { run: named[i], dir: dirs[i], ...keyFigures(r) }, settings: flatSettings(r.config, r.backend, r.threads) }],
  );
  const { keys, values } = differing(entries.map((e) => e.settings));
  return { rows: entries.map((e, i): CompareRow => ({ ...e.row, settings: values[i] })), differing: keys };
}

type Column = [header: string, show: (r: CompareRow) => string, numeric: boolean];

/**
 * Display columns: header and how each row shows it; shared by the terminal table and the HTML page.
 * Columns of figures only one family of kinds measures appear only when such a run is compared.
 */
export function columns(rows: CompareRow[]): Column[] {
  const settingKeys = [...new Set(rows.flatMap((r) => Object.keys(r.settings)))];
  const transfer = rows.some((r) => r.kind !== 'query-attack');
  const query = rows.some((r) => r.kind === 'query-attack');
  const evaluation = rows.some((r) => r.kind === 'evaluation');
  return [
    ['run', (r) => r.run, false],
    ...(new Set(rows.map((r) => r.kind)).size > 1 ? ([['kind', (r) => r.kind, false]] as Column[]) : []),
    ['victim acc', (r) => pct(r.victimCleanAccuracy), true],
    ...(transfer ? ([['agreement', (r) => pct(r.agreement), true]] as Column[]) : []),
    ['attack q', (r) => num(r.attackQueries), true],
    ['measure q', (r) => num(r.measurementQueries), true],
    ['ε', (r) => num(r.epsilon), true],
    ['misclass', (r) => pct(r.misclassificationRate), true],
    ...(transfer
      ? ([
          ['transfer', (r) => pct(r.transferRate), true],
          ['best targeted', (r) => (r.bestTargetedSuccessRate === null ? '—' : `${pct(r.bestTargetedSuccessRate)} @${num(r.bestTargetedEpsilon)}`), true],
        ] as Column[])
      : []),
    ...(query
      ? ([
          ['query success', (r) => pct(r.querySuccessRate), true],
          ['median q/image', (r) => num(r.medianQueriesPerImage), true],
        ] as Column[])
      : []),
    ...(evaluation ? ([['white-box acc', (r) => pct(r.whiteboxAccuracy), true]] as Column[]) : []),
    ['duration', (r) => seconds(r.durationSeconds), true],
    ...settingKeys.map((k): Column => [k, (r) => r.settings[k] ?? '', false]),
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

/** Every figure column, whatever kinds are compared: a machine reads the same columns every time. */
export const CSV_COLUMNS = [
  'run', 'dir', 'kind', 'victimCleanAccuracy', 'agreement', 'attackQueries', 'measurementQueries', 'epsilon',
  'misclassificationRate', 'transferRate', 'bestTargetedSuccessRate', 'bestTargetedEpsilon', 'querySuccessRate',
  'medianQueriesPerImage', 'whiteboxAccuracy', 'durationSeconds',
] as const;

/** Raw numbers (rates as fractions) for machines; differing settings follow as extra columns. */
export function compareCsv(rows: CompareRow[], differing: string[]): string {
  const head = [...CSV_COLUMNS, ...differing];
  const lines = rows.map((r) => [...CSV_COLUMNS.map((c) => csvCell(r[c])), ...differing.map((k) => csvCell(r.settings[k]))].join(','));
  return [head.map(csvCell).join(','), ...lines].join('\n') + '\n';
}
