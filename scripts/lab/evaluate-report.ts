import { relative, dirname, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { svgOf } from '../../adversary/report/charts.js';
import { writeFileAtomic } from '../../adversary/run/store.js';
import { esc, table } from '../../adversary/report/html.js';
import type { ModelEvaluation } from './evaluate.js';
import { attackLabel } from './evaluate-table.js';
import { describeVerdict } from './masking.js';

/**
 * evaluation.html: the comparison table, each model's masking verdict, and the plots — accuracy
 * against ε per attack (clean accuracy at ε 0), white-box success against black-box transfer when a
 * campaign ran, and the overfitting guard's readings during training. Rendered to inline SVG, like the
 * campaign reports, so the page needs no script.
 */
const CHART = { width: 260, height: 200 };

function lines(values: object[], x: string, y: string, xTitle: string, yTitle: string, facet: string): TopLevelSpec {
  return {
    data: { values },
    facet: { column: { field: facet, type: 'nominal', title: null } },
    spec: {
      ...CHART,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: x, type: 'quantitative', title: xTitle },
        y: { field: y, type: 'quantitative', title: yTitle, scale: { domain: [0, 1] } },
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom' } },
      },
    },
  } as TopLevelSpec;
}

export async function writeEvaluationReport(
  path: string,
  evals: ModelEvaluation[],
  rows: string[][],
  out: string,
  o: { pgdSteps: number; restarts: number; marginRestarts: number },
): Promise<void> {
  const acc = evals.flatMap((e) => [
    ...['fgsm', 'pgd', 'pgd-margin', 'worst'].map((a) => ({ model: e.model, series: attackLabel(a as 'fgsm', o).replace(/-\d+/, ''), epsilon: 0, accuracy: e.cleanAccuracyOnSample })),
    ...e.whitebox.filter((p) => p.accuracy !== null).map((p) => ({ model: e.model, series: attackLabel(p.attack, o).replace(/-\d+/, ''), epsilon: p.epsilon, accuracy: p.accuracy })),
  ]);
  const parts = ['<h2>White-box accuracy against ε</h2>', `<figure>${await svgOf(lines(acc, 'epsilon', 'accuracy', 'ε (L∞)', 'accuracy', 'model'))}</figure>`];
  const withCampaign = evals.filter((e) => e.campaign);
  if (withCampaign.length) {
    const rates = withCampaign.flatMap((e) => [
      ...e.whitebox.filter((p) => p.attack === 'worst').map((p) => ({ model: e.model, series: 'white-box (worst case)', epsilon: p.epsilon, rate: p.successRate })),
      ...(e.campaign?.points ?? []).map((p) => ({ model: e.model, series: 'black-box transfer', epsilon: p.epsilon, rate: p.transferRate })),
    ]);
    parts.push('<h2>Black-box transfer against white-box success</h2>', `<figure>${await svgOf(lines(rates, 'epsilon', 'rate', 'ε (L∞)', 'rate', 'model'))}</figure>`);
    parts.push('<p>Campaign reports: ' + withCampaign.map((e) => `<a href="${esc(relative(dirname(path), join(e.campaign!.runDir, 'report.html')))}">${esc(e.model)}</a>`).join(', ') + '</p>');
  }
  const guarded = evals.filter((e) => e.guardReadings?.length);
  if (guarded.length) {
    const readings = guarded.flatMap((e) =>
      e.guardReadings!.flatMap((r) => [
        { model: e.model, series: 'PGD accuracy (guard batch)', epoch: r.epoch, accuracy: r.robustAccuracy },
        { model: e.model, series: 'clean accuracy (guard batch)', epoch: r.epoch, accuracy: r.cleanAccuracy },
      ]),
    );
    parts.push('<h2>Overfitting guard during training</h2>', `<figure>${await svgOf(lines(readings, 'epoch', 'accuracy', 'epochs trained', 'accuracy', 'model'))}</figure>`);
  }
  const verdicts = evals.map((e) => `<li><b>${esc(e.model)}</b>: ${esc(describeVerdict(e.masking))}</li>`).join('');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>transferlab evaluation</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}td,th{border:1px solid #ccd;padding:2px 8px;text-align:right}td:first-child{text-align:left}</style></head>
<body><h1>Victim models compared</h1><p>Folder: ${esc(out)}</p>
${table(rows[0].map(esc), rows.slice(1).map((r) => r.map(esc)))}
<h2>Masking check</h2><ul>${verdicts}</ul>
${parts.join('\n')}
</body></html>
`;
  writeFileAtomic(path, html);
}
