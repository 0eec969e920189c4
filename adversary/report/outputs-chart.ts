/**
 * The chart of the output-policy experiment (scripts/experiment-outputs.ts), in the report's style
 * (charts.ts): one panel per measure — the substitute's agreement and the campaign's transfer at each
 * budget, the query attack's success at ε 0.3 — one bar per victim output policy, in the order served.
 */
import type { TopLevelSpec } from 'vega-lite';
import { CONFIG } from './charts.js';

export interface OutputsChartRow {
  policy: string;
  campaigns: { budget: number; agreement: number | null; transfer: number | null }[];
  query: { attack: string; success: number | null } | null;
}

export function outputsChart(rows: OutputsChartRow[], budgets: readonly number[]): TopLevelSpec {
  const fmt = (b: number) => b.toLocaleString('en-US');
  const measures = [
    ...budgets.map((b) => `agreement (${fmt(b)} queries)`),
    ...budgets.map((b) => `transfer ε 0.3 (${fmt(b)} queries)`),
    'query attack success ε 0.3',
  ];
  const values = rows.flatMap((r) => [
    ...r.campaigns.flatMap((c) => [
      { policy: r.policy, measure: `agreement (${fmt(c.budget)} queries)`, value: c.agreement },
      { policy: r.policy, measure: `transfer ε 0.3 (${fmt(c.budget)} queries)`, value: c.transfer },
    ]),
    ...(r.query ? [{ policy: r.policy, measure: 'query attack success ε 0.3', value: r.query.success, attack: r.query.attack === 'rays' ? 'RayS' : 'Square' }] : []),
  ]).filter((v) => v.value !== null);
  return {
    config: CONFIG,
    data: { values },
    facet: { column: { field: 'measure', type: 'nominal', title: null, sort: measures } },
    spec: {
      width: 150,
      height: 200,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'policy', type: 'nominal', title: 'victim output', sort: rows.map((r) => r.policy), axis: { labelAngle: -40 } },
        y: { field: 'value', type: 'quantitative', title: 'rate', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: { field: 'policy', type: 'nominal', title: null, sort: rows.map((r) => r.policy), legend: null },
        tooltip: [
          { field: 'policy', type: 'nominal' },
          { field: 'measure', type: 'nominal' },
          { field: 'value', type: 'quantitative', format: '.1%' },
        ],
      },
    },
    resolve: { scale: { y: 'shared' } },
  };
}
