import { medianInterval, pearsonInterval, type Distance, type DistanceSummary } from '../../shared/statistics.js';
import type { NearestBoundary } from '../campaign/boundary-nearest.js';
import { esc, num, pct, table } from './html.js';

/** One model's distances along a measure: their summary and, when the run kept them, the distances themselves. */
interface Side {
  summary: DistanceSummary;
  distances?: Distance[];
}
/** The first-flip measure along the substitute's FGSM direction, for the same images. */
export interface Along {
  substitute?: DistanceSummary;
  victim?: DistanceSummary;
  substituteDistances?: Distance[];
  victimDistances?: Distance[];
}
const found = (d: Distance[]) => d.filter((x): x is number => x !== null);
const interval = (ci: [number, number] | null) => (ci ? ` (${ci[0].toFixed(3)}–${ci[1].toFixed(3)})` : '');

/**
 * The report's side-by-side of the two boundary measures: along the substitute's FGSM direction
 * (the first flip) and each model's own nearest L∞ boundary (RayS), for the same images.
 */
export function nearestSection(n: NearestBoundary | null | undefined, along?: Along): string {
  if (!n) return '';
  const row = (label: string, f: (d: Side) => string, a?: Side, b?: Side) => [esc(label), a ? f(a) : '—', b ? f(b) : '—'];
  const rows = (a: Side | undefined, b: Side | undefined, what: string) => [
    row(`${what}: found`, (d) => `${num(d.summary.flipped)} of ${num(d.summary.images)} (${pct(d.summary.flipRate)})`, a, b),
    row(`${what}: lower quartile`, (d) => num(d.summary.q25, 3), a, b),
    row(`${what}: median (95 % CI)`, (d) => `${num(d.summary.median, 3)}${interval(d.distances ? medianInterval(found(d.distances)) : null)}`, a, b),
    row(`${what}: upper quartile`, (d) => num(d.summary.q75, 3), a, b),
  ];
  const side = (summary?: DistanceSummary, distances?: Distance[]): Side | undefined => (summary ? { summary, distances } : undefined);
  const both = n.victim.filter((v, i) => v !== null && n.substitute[i] !== null).length;
  const adbd = Array.from({ length: 10 }, (_, c) => [esc(String(c)), num(n.adbd.substitute[c], 3), num(n.adbd.victim[c], 3)]);
  return [
    '<h3>Each model’s own nearest boundary (RayS, label-only)</h3>',
    `<p>For the first ${esc(num(n.images))} evaluation images, RayS (L∞, hard-label, ${esc(num(n.queriesPerImage))} queries per image) ` +
      'searched each model for its nearest adversarial example from its own label of the clean image: the victim through its label API ' +
      `(${esc(num(n.queries))} measurement queries paid, ${esc(num(n.probes))} asked), the substitute locally. RayS’s distances are upper ` +
      'bounds on the true nearest boundary. Correlation across images: <b>' + esc(num(n.pearson, 3)) + '</b>' + esc(interval(pearsonInterval(n.pearson, both))) + '; median cosine between the two ' +
      `models’ boundary perturbations (direction agreement): <b>${esc(num(n.medianCosine, 3))}</b>.</p>`,
    table(['L∞ distance', 'substitute', 'victim'], [
      ...(along ? rows(side(along.substitute, along.substituteDistances), side(along.victim, along.victimDistances), 'along the substitute’s FGSM direction (all images)') : []),
      ...rows(side(n.substituteSummary, n.substitute), side(n.victimSummary, n.victim), 'own nearest boundary (RayS)'),
    ]),
    '<p>The intervals say how far the figures could move with other images: distribution-free 95 % intervals of the median ' +
      '(order statistics), and Fisher’s for the correlation.</p>',
    '<p>Average decision-boundary distance per true class (ADBD, RayS):</p>',
    table(['class', 'substitute', 'victim'], adbd),
  ].join('\n');
}
