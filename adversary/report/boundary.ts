import type { DistanceSummary } from '../../shared/statistics.js';
import type { BoundaryMap, BoundaryResults } from '../campaign/boundary.js';
import { distanceCharts, svgOf } from './charts.js';
import { classColourHex } from './raster.js';
import { esc, num, pct, pngDataUri, table } from './html.js';
import type { CampaignResults } from '../campaign/results.js';
import { nearestSection } from './nearest.js';
import type { RunStore } from '../run/store.js';

/**
 * The report's boundary section and its pictures. results.json files outlive the code that wrote
 * them, so every block is optional here: a run from before a field existed renders what it has
 * instead of failing the whole report.
 */

export interface PictureRef {
  /** Relative to the run folder (as results.json records it), or absolute. */
  path: string;
  caption: string;
}

/** A <figure> with the PNG inlined as a data URI, or a note when the file is gone. */
export function pictureHtml(store: RunStore, ref: PictureRef): string {
  const uri = pngDataUri(store.read(ref.path));
  if (!uri) return `<figure><p class="note">missing picture: ${esc(ref.path)}</p><figcaption>${esc(ref.caption)}</figcaption></figure>`;
  return `<figure><img class="pic" src="${uri}" alt="${esc(ref.caption)}"><figcaption>${esc(ref.caption)}</figcaption></figure>`;
}

const GRID_CAPTIONS: Record<string, string> = {
  'grid-untargeted.png': 'Untargeted attack: clean images and their adversarial versions at several ε, with the victim’s labels (red frame: the victim was fooled).',
  'grid-targeted.png': 'Targeted attack: clean images and their adversarial versions at several ε, with the victim’s labels (red frame: the victim chose the target).',
};

/**
 * The image grids: those results.json names, then any other PNG left in images/ that is neither
 * a grid nor a boundary map (older runs recorded no paths; a picture on disk should not vanish).
 */
export function gridPictures(store: RunStore, r: CampaignResults): PictureRef[] {
  const caption = (p: string) => GRID_CAPTIONS[p.split('/').at(-1) ?? ''] ?? p.split('/').at(-1)?.replace(/\.png$/i, '').replace(/[-_]+/g, ' ') ?? p;
  const refs = (r.images?.grids ?? []).map((path) => ({ path, caption: caption(path) }));
  const known = new Set([...refs.map((x) => x.path), ...(r.images?.maps ?? []), ...(r.boundary?.maps ?? []).map((m) => m.image)].map((p) => store.where(p)));
  for (const f of store.list('images').filter((x) => /\.png$/i.test(x) && !/^boundary-map/i.test(x))) {
    if (!known.has(store.where(`images/${f}`))) refs.push({ path: `images/${f}`, caption: caption(f) });
  }
  return refs;
}

const card = (value: string, label: string) => `<div class="card"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;

function summaryTable(s: { substitute?: DistanceSummary; victim?: DistanceSummary }): string {
  const rows: [string, (d: DistanceSummary) => string][] = [
    ['images bisected', (d) => num(d.images)],
    ['label flipped within range', (d) => `${num(d.flipped)} (${pct(d.flipRate)})`],
    ['minimum flip ε', (d) => num(d.min, 3)],
    ['lower quartile', (d) => num(d.q25, 3)],
    ['median', (d) => num(d.median, 3)],
    ['upper quartile', (d) => num(d.q75, 3)],
    ['maximum', (d) => num(d.max, 3)],
  ];
  return table(
    ['', 'substitute', 'victim'],
    rows.map(([k, f]) => [esc(k), s.substitute ? f(s.substitute) : '—', s.victim ? f(s.victim) : '—']),
  );
}

function classLegend(classes: number): string {
  const chip = (c: number) =>
    `<span style="display:inline-block;margin-right:10px"><span style="display:inline-block;width:12px;height:12px;background:${classColourHex(c)};vertical-align:-1px"></span> ${c}</span>`;
  return `<p>Class colours: ${Array.from({ length: classes }, (_, c) => chip(c)).join('')}</p>`;
}

function mapCaption(m: BoundaryMap): string {
  return `Evaluation image ${m.index}: true ${m.trueLabel}, substitute ${m.substituteLabel}, victim ${m.victimLabel}; ` +
    `${m.grid}×${m.grid} grid over ±${m.extent}; agreement ${pct(m.agreement)}; ${num(m.queries)} victim queries`;
}

export async function boundarySection(store: RunStore, b: BoundaryResults | null | undefined, classes: number): Promise<string> {
  if (!b) {
    return '<p class="note">The boundary was not measured in this run (boundary.enabled was off, or the run is a white-box baseline).</p>';
  }
  const s = b.stats;
  const q = b.queries ?? { distances: 0, maps: 0 };
  const parts: string[] = [
    `<p>For each of the first ${esc(num(b.images))} evaluation images: the smallest ε (to ${esc(num(b.precision, 3))} = 1/255, searched up to ` +
      `${esc(num(b.epsilonMax))}) at which the substitute’s label flips and the smallest at which the victim’s does, both along ` +
      `the substitute’s FGSM sign direction (crafted from the ${esc(b.craftLabel)}’s labels), on the same 8-bit probes: ` +
      'a coarse scan in steps of 16/255 up to the first step whose label differs, then a bisection inside that interval (at most 20 probes per image). ' +
      'A positive gap means the victim’s boundary lies farther out than the substitute’s.</p>',
  ];
  if (s) {
    parts.push(
      `<div class="cards">${[
        card(num(s.substitute?.median, 3), 'median flip ε, substitute'),
        card(num(s.victim?.median, 3), 'median flip ε, victim'),
        card(num(s.medianGap, 3), 'median gap (victim − substitute)'),
        card(num(s.pearson, 3), `correlation (Pearson, ${num(s.bothFlipped)} images)`),
        card(pct(s.victimNearer), 'victim boundary nearer'),
        card(pct(s.victimFarther), 'victim boundary farther'),
        card(pct(s.equal), 'same distance'),
      ].join('')}</div>`,
      summaryTable(s),
      `<p>Nearer / farther / same are shares of the ${esc(num(s.compared))} images where at least one label flips (a flip counts as nearer than none).</p>`,
    );
  }
  const sub = b.substituteDistances ?? [];
  const vic = b.victimDistances ?? [];
  if (sub.length > 0 && sub.length === vic.length) {
    const finite = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null && Number.isFinite(x));
    const pairs = sub.flatMap((x, i) => (x !== null && vic[i] !== null ? [{ substitute: x, victim: vic[i] as number }] : []));
    const never = (xs: (number | null)[]) => xs.filter((x) => x === null).length;
    parts.push(
      `<figure class="chart">${await svgOf(distanceCharts(finite(sub), finite(vic), pairs))}<figcaption>` +
        `Never flipped within the searched range (left out of both charts): substitute ${esc(never(sub))}, victim ${esc(never(vic))} of ${esc(sub.length)}.` +
        '</figcaption></figure>',
    );
  }
  parts.push(
    table(['victim queries (measurement)', 'paid', 'asked (incl. cache hits)'], [
      ['boundary distances', num(q.distances), num(b.probes?.distances)],
      ['boundary maps', num(q.maps), num(b.probes?.maps)],
      ...(b.nearest ? [['nearest boundary (RayS)', num(b.nearest.queries), num(b.nearest.probes)]] : []),
    ]),
  );
  parts.push(nearestSection(b.nearest, { ...s, substituteDistances: b.substituteDistances, victimDistances: b.victimDistances }));

  const maps = Array.isArray(b.maps) ? b.maps : [];
  if (maps.length) {
    parts.push(
      '<h3>Boundary maps</h3>',
      `<p>Each map labels a grid over the plane spanned by the substitute’s sign-gradient direction (→) and a random orthogonal ` +
        `sign direction (↑), centred on the original image (the framed square). Panels: the substitute’s labels, the victim’s labels, ` +
        `and where they differ (dark). Agreement over all ${esc(maps.length)} maps: <b>${pct(b.mapAgreement)}</b>.</p>`,
      classLegend(classes),
      maps.map((m) => pictureHtml(store, { path: m.image, caption: mapCaption(m) })).join('\n'),
    );
  }
  return parts.join('\n');
}
