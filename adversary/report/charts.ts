import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/**
 * Vega-Lite spec builders for the run report and the comparison page, and `svgOf`, which renders
 * a spec to an SVG string in Node. Charts are rendered server-side so report.html carries no
 * script and no library: it opens offline, in any browser, years from now.
 */

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
export const CONFIG = {
  font: FONT,
  view: { stroke: '#dde2ea' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eef0f4' },
  legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 600 },
  header: { labelFontSize: 13, labelFontWeight: 600 },
} as const;

/** Fixed panel order: the three measures as the seed paper reads them, left to right. */
export const METRICS = ['misclassification', 'transfer', 'targeted success'] as const;
export type Metric = (typeof METRICS)[number];

export interface CurvePoint {
  epsilon: number;
  metric: Metric;
  value: number;
  /** Which curve: "black-box", "white-box baseline", or a run's name on the comparison page. */
  series: string;
}

/** One panel per measure, rate against ε, one line per series, shared axes across panels. */
export function epsilonCurves(points: CurvePoint[]): TopLevelSpec {
  return {
    config: CONFIG,
    data: { values: points },
    facet: { column: { field: 'metric', type: 'nominal', title: null, sort: [...METRICS] } },
    spec: {
      width: 250,
      height: 210,
      mark: { type: 'line', point: { size: 36 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'epsilon', type: 'quantitative', title: 'ε (L∞ perturbation)', scale: { zero: true } },
        y: { field: 'value', type: 'quantitative', title: 'rate', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        // Colour and dash share one legend; both carry the same settings so vega-lite merges them cleanly.
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 600 } },
        strokeDash: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 600 } },
        tooltip: [
          { field: 'series', type: 'nominal' },
          { field: 'epsilon', type: 'quantitative', format: '.3f' },
          { field: 'value', type: 'quantitative', format: '.1%' },
        ],
      },
    },
    resolve: { scale: { x: 'shared', y: 'shared' } },
  };
}

export interface BudgetPoint {
  queriesPerImage: number;
  /** The ε panel, as the run's results name it ("0.30"). */
  epsilon: string;
  /** Share of images with an adversarial example within ε by this budget. */
  value: number;
  series: string;
}

/** A query attack's success against its budget: one panel per ε, one line per run (log budget axis). */
export function budgetCurves(points: BudgetPoint[]): TopLevelSpec {
  return {
    config: CONFIG,
    data: { values: points },
    facet: { column: { field: 'epsilon', type: 'nominal', title: 'ε (L∞)' } },
    spec: {
      width: 220,
      height: 200,
      mark: { type: 'line', point: { size: 30 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'queriesPerImage', type: 'quantitative', title: 'queries per image', scale: { type: 'log' } },
        y: { field: 'value', type: 'quantitative', title: 'success', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 600 } },
        tooltip: [
          { field: 'series', type: 'nominal' },
          { field: 'queriesPerImage', type: 'quantitative' },
          { field: 'value', type: 'quantitative', format: '.1%' },
        ],
      },
    },
    resolve: { scale: { x: 'shared', y: 'shared' } },
  };
}

export interface RoundPoint {
  round: number;
  measure: 'substitute accuracy' | 'agreement with victim';
  value: number;
  series: string;
  attackQueries: number;
}

/**
 * Substitute accuracy and agreement per training round. One run: both measures on one panel
 * (colour = measure). Several runs: one panel per measure, colour = run, so runs share axes.
 */
export function roundsChart(points: RoundPoint[], bySeries = false): TopLevelSpec {
  return {
    config: CONFIG,
    width: bySeries ? 320 : 420,
    height: 220,
    data: { values: points },
    mark: { type: 'line', point: { size: 36 }, strokeWidth: 2 },
    encoding: {
      ...(bySeries ? { column: { field: 'measure', type: 'nominal', title: null } } : {}),
      x: { field: 'round', type: 'quantitative', title: 'substitute training round', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'value', type: 'quantitative', title: null, scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: { field: bySeries ? 'series' : 'measure', type: 'nominal', title: null, legend: { orient: 'bottom' } },
      tooltip: [
        { field: 'series', type: 'nominal' },
        { field: 'round', type: 'quantitative' },
        { field: 'measure', type: 'nominal' },
        { field: 'value', type: 'quantitative', format: '.1%' },
        { field: 'attackQueries', type: 'quantitative', title: 'attack queries so far' },
      ],
    },
  };
}

/**
 * True class × the victim's label on adversarial examples. Colour is the row share (so classes
 * with more images do not dominate); each cell prints its count.
 */
export function confusionHeatmap(matrix: number[][], title: string): TopLevelSpec {
  const values = matrix.flatMap((row, truth) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, label) => ({ truth, label, count, share: total > 0 ? count / total : 0 }));
  });
  return {
    config: CONFIG,
    title: { text: title, fontSize: 13, anchor: 'start' },
    width: 300,
    height: 300,
    data: { values },
    encoding: {
      x: { field: 'label', type: 'ordinal', title: "victim's label on the adversarial image", axis: { labelAngle: 0 } },
      y: { field: 'truth', type: 'ordinal', title: 'true class' },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { field: 'share', type: 'quantitative', title: 'row share', scale: { scheme: 'blues', domain: [0, 1] }, legend: { format: '.0%' } },
          tooltip: [
            { field: 'truth', type: 'ordinal', title: 'true class' },
            { field: 'label', type: 'ordinal', title: 'victim label' },
            { field: 'count', type: 'quantitative' },
            { field: 'share', type: 'quantitative', format: '.1%' },
          ],
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: '#1d2433' },
        },
      },
    ],
  };
}

/** Transfer rate per true class; classes with no correctly-labelled clean image are left out. */
export function perClassBars(rates: (number | null)[], title: string): TopLevelSpec {
  const values = rates.flatMap((rate, cls) => (rate === null ? [] : [{ cls, rate }]));
  return {
    config: CONFIG,
    title: { text: title, fontSize: 13, anchor: 'start' },
    width: 300,
    height: 300,
    data: { values },
    layer: [
      {
        mark: { type: 'bar', color: '#2b5fad' },
        encoding: {
          x: { field: 'cls', type: 'ordinal', title: 'true class', axis: { labelAngle: 0 }, scale: { domain: rates.map((_, i) => i) } },
          y: { field: 'rate', type: 'quantitative', title: 'transfer rate', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
          tooltip: [
            { field: 'cls', type: 'ordinal', title: 'true class' },
            { field: 'rate', type: 'quantitative', format: '.1%' },
          ],
        },
      },
      {
        mark: { type: 'text', dy: -6, fontSize: 10 },
        encoding: {
          x: { field: 'cls', type: 'ordinal', scale: { domain: rates.map((_, i) => i) } },
          y: { field: 'rate', type: 'quantitative' },
          text: { field: 'rate', type: 'quantitative', format: '.0%' },
        },
      },
    ],
  };
}

/**
 * Distance to the boundary along the attack direction: the two distributions (step histograms
 * on shared bins) and the per-image scatter of victim against substitute, with the diagonal
 * where the two boundaries coincide.
 */
export function distanceCharts(substitute: number[], victim: number[], pairs: { substitute: number; victim: number }[]): TopLevelSpec {
  const dist = [
    ...substitute.map((epsilon) => ({ model: 'substitute', epsilon })),
    ...victim.map((epsilon) => ({ model: 'victim', epsilon })),
  ];
  const max = Math.max(0.05, ...substitute, ...victim);
  const xScale = { domain: [0, max] };
  return {
    config: CONFIG,
    hconcat: [
      {
        width: 340,
        height: 105,
        title: { text: 'smallest ε that flips the label', fontSize: 13, anchor: 'start' },
        data: { values: dist },
        mark: { type: 'bar', binSpacing: 1 },
        encoding: {
          row: { field: 'model', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left' } },
          x: { field: 'epsilon', type: 'quantitative', bin: { maxbins: 30, extent: [0, max] }, title: 'ε' },
          y: { aggregate: 'count', type: 'quantitative', title: 'images' },
          color: { field: 'model', type: 'nominal', title: null, scale: { range: ['#e07b39', '#2b5fad'] }, legend: null },
        },
      },
      {
        width: 260,
        height: 240,
        title: { text: 'per image: victim vs substitute', fontSize: 13, anchor: 'start' },
        layer: [
          {
            data: { values: [{ a: 0 }, { a: max }] },
            mark: { type: 'line', color: '#999', strokeDash: [4, 4] },
            encoding: { x: { field: 'a', type: 'quantitative', scale: xScale }, y: { field: 'a', type: 'quantitative', scale: xScale } },
          },
          {
            data: { values: pairs },
            mark: { type: 'circle', size: 22, opacity: 0.6, color: '#2b5fad' },
            encoding: {
              x: { field: 'substitute', type: 'quantitative', title: 'substitute flip ε', scale: xScale },
              y: { field: 'victim', type: 'quantitative', title: 'victim flip ε', scale: xScale },
            },
          },
        ],
      },
    ],
  };
}

let chartCount = 0;

/**
 * Compile a Vega-Lite spec and render it to SVG with no browser (renderer 'none'). Vega numbers
 * clip paths and gradients with process-wide counters; each chart's ids get their own prefix so
 * several SVGs inlined in one page can never point at each other's definitions.
 */
export async function svgOf(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const prefix = `c${++chartCount}-`;
    return svg.replace(/(id="|url\(#|href="#)(clip|gradient_|p_)/g, `$1${prefix}$2`);
  } finally {
    view.finalize();
  }
}
