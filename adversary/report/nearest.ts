import type { DistanceSummary } from '../../shared/statistics.js';
import type { NearestBoundary } from '../campaign/boundary-nearest.js';
import { esc, num, pct, table } from './html.js';

/**
 * The report's side-by-side of the two boundary measures: along the substitute's FGSM direction
 * (the first flip) and each model's own nearest L∞ boundary (RayS), for the same images.
 */
export function nearestSection(n: NearestBoundary | null | undefined, along?: { substitute?: DistanceSummary; victim?: DistanceSummary }): string {
  if (!n) return '';
  const row = (label: string, f: (d: DistanceSummary) => string, a?: DistanceSummary, b?: DistanceSummary) => [esc(label), a ? f(a) : '—', b ? f(b) : '—'];
  const rows = (a: DistanceSummary | undefined, b: DistanceSummary | undefined, what: string) => [
    row(`${what}: found`, (d) => `${num(d.flipped)} of ${num(d.images)} (${pct(d.flipRate)})`, a, b),
    row(`${what}: lower quartile`, (d) => num(d.q25, 3), a, b),
    row(`${what}: median`, (d) => num(d.median, 3), a, b),
    row(`${what}: upper quartile`, (d) => num(d.q75, 3), a, b),
  ];
  const adbd = Array.from({ length: 10 }, (_, c) => [esc(String(c)), num(n.adbd.substitute[c], 3), num(n.adbd.victim[c], 3)]);
  return [
    '<h3>Each model’s own nearest boundary (RayS, label-only)</h3>',
    `<p>For the first ${esc(num(n.images))} evaluation images, RayS (L∞, hard-label, ${esc(num(n.queriesPerImage))} queries per image) ` +
      'searched each model for its nearest adversarial example from its own label of the clean image: the victim through its label API ' +
      `(${esc(num(n.queries))} measurement queries paid, ${esc(num(n.probes))} asked), the substitute locally. RayS’s distances are upper ` +
      'bounds on the true nearest boundary. Correlation across images: <b>' + esc(num(n.pearson, 3)) + '</b>; median cosine between the two ' +
      `models’ boundary perturbations (direction agreement): <b>${esc(num(n.medianCosine, 3))}</b>.</p>`,
    table(['L∞ distance', 'substitute', 'victim'], [
      ...(along ? rows(along.substitute, along.victim, 'along the substitute’s FGSM direction (all images)') : []),
      ...rows(n.substituteSummary, n.victimSummary, 'own nearest boundary (RayS)'),
    ]),
    '<p>Average decision-boundary distance per true class (ADBD, RayS):</p>',
    table(['class', 'substitute', 'victim'], adbd),
  ].join('\n');
}
