/**
 * The table of experiment-outputs.ts: per output policy, what the default campaign extracts and
 * transfers at each budget and what the query attack achieves, then the goals, met or not,
 * read off the same rows (never written by hand).
 */
import type { Threat } from '../shared/protocol/output.js';

export interface OutputRow {
  policy: string;
  threat: Threat;
  campaigns: { budget: number; attackQueries: number; agreement: number | null; transfer: number | null; misclassification: number | null; seconds: number }[];
  /** Null when the run measured the campaigns only. */
  query: { attack: string; images: number; queriesPerImage: number; success: number | null; medianQueries: number | null; attackQueries: number; seconds: number } | null;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)} %`);
const int = (v: number) => v.toLocaleString('en-US');
const at = (r: OutputRow, budget: number) => r.campaigns.find((c) => c.budget === budget);

export function outputsTable(rows: OutputRow[], budgets: readonly number[]): string {
  const [big, small] = budgets;
  const head = [
    'victim output',
    'campaign threat',
    ...budgets.flatMap((b) => [`agreement (${int(b)})`, `transfer ε 0.3 (${int(b)})`]),
    'query attack',
    'success ε 0.3',
    'median queries to ε 0.3',
  ];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const cells = [
      `\`${r.policy}\``,
      r.threat,
      ...budgets.flatMap((b) => [pct(at(r, b)?.agreement), pct(at(r, b)?.transfer)]),
      r.query ? `${r.query.attack === 'rays' ? 'RayS' : 'Square'} (${r.query.images} images, ≤ ${int(r.query.queriesPerImage)} each)` : '–',
      pct(r.query?.success),
      r.query?.medianQueries === null || r.query === null ? '–' : String(r.query.medianQueries),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n\n${goals(rows, big, small)}\n`;
}

/** The goals against the rows: each a line saying the figure and whether it is met. */
export function goals(rows: OutputRow[], big: number, small: number): string {
  const label = rows.find((r) => r.policy === 'label');
  const scores = rows.find((r) => r.policy === 'scores');
  const out: string[] = [];
  const met = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? '**met**' : '**not met**');
  if (scores?.query) {
    const q = scores.query;
    const ok = q.success === null ? null : q.success >= 0.99 && q.queriesPerImage <= 1000 && q.medianQueries !== null && q.medianQueries <= 50;
    out.push(`- Square Attack from scores at ε 0.3: success ${pct(q.success)} within ${int(q.queriesPerImage)} queries, median ${q.medianQueries ?? '–'} (goal ≥ 99 % within 1,000, median ≤ 50): ${met(ok)}`);
  }
  if (label && scores && big !== undefined && small !== undefined) {
    const [a, b] = [at(label, big)?.agreement ?? null, at(scores, big)?.agreement ?? null];
    const ok = a === null || b === null ? null : b >= a + 0.02;
    out.push(`- substitute agreement at ${int(big)} queries: from scores ${pct(b)}, from labels ${pct(a)} (goal: scores ≥ labels + 2 points): ${met(ok)}`);
    const [t1, t2] = [at(scores, small)?.transfer ?? null, at(label, big)?.transfer ?? null];
    const ok2 = t1 === null || t2 === null ? null : t1 >= t2;
    out.push(`- transfer at ε 0.3: ${int(small)} score queries ${pct(t1)}, ${int(big)} label queries ${pct(t2)} (goal: the first ≥ the second): ${met(ok2)}`);
  }
  return out.join('\n');
}
