import { stringify as toYaml } from 'yaml';
import { confusionHeatmap, epsilonCurves, perClassBars, roundsChart, svgOf, type CurvePoint, type RoundPoint } from './charts.js';
import { boundarySection, gridPictures, pictureHtml } from './boundary.js';
import { bestTargeted, esc, kvTable, num, page, pct, pointNear, redact, seconds, table } from './html.js';
import type { CampaignResults } from '../campaign/results.js';
import { runStore, type RunStore } from '../run/store.js';
import type { SweepPoint } from '../campaign/transfer.js';

/**
 * report.html for one run: one self-contained page (charts inlined as SVG, pictures as data URIs,
 * no script, no network) so it can be mailed, archived or opened offline exactly as written.
 */
export interface ReportOptions {
  /** A white-box baseline run over the same evaluation set: drawn beside the black-box curves. */
  whitebox?: CampaignResults;
}

/** MITRE ATLAS IDs and names of the techniques and mitigations this simulator exercises. */
const ATLAS = {
  api: ['AML.T0040', 'ML Model Inference API Access'],
  proxy: ['AML.T0005.001', 'Create Proxy ML Model: Train Proxy via Replication'],
  extract: ['AML.T0024.002', 'Exfiltration via ML Inference API: Extract ML Model'],
  transfer: ['AML.T0043.002', 'Craft Adversarial Data: Black-Box Transfer'],
  whitebox: ['AML.T0043.000', 'Craft Adversarial Data: White-Box Optimization'],
  verify: ['AML.T0042', 'Verify Attack'],
  evade: ['AML.T0015', 'Evade ML Model'],
} as const;

type AtlasKey = keyof typeof ATLAS;

/** Which techniques a run exercised: a white-box run never touches the API or builds a proxy. */
export function atlasTechniques(r: CampaignResults, withBaseline = false): (typeof ATLAS)[AtlasKey][] {
  const keys: AtlasKey[] =
    r.kind === 'whitebox' ? ['whitebox', 'verify', 'evade'] : ['api', 'proxy', 'extract', 'transfer', ...(withBaseline ? (['whitebox'] as const) : []), 'verify', 'evade'];
  return keys.map((k) => ATLAS[k]);
}

const cfg = (r: CampaignResults, key: string): unknown => (r.config as Record<string, unknown>)[key];

/** The victim's class count, from what the run recorded (older runs lack the dataset summary). */
export const classesOf = (r: CampaignResults): number => r.victim.info?.classes ?? r.dataset?.classes ?? r.perClass[0]?.transferRate.length ?? 0;

const SERIES = { blackbox: 'black-box: crafted on the substitute', whitebox: 'white-box: crafted on the victim' };

export function curvePoints(points: SweepPoint[], series: string): CurvePoint[] {
  return points.flatMap((p): CurvePoint[] => {
    const out: CurvePoint[] = [];
    const add = (metric: CurvePoint['metric'], value: number | null) => {
      if (value !== null && Number.isFinite(value)) out.push({ epsilon: p.epsilon, metric, value, series });
    };
    if (p.mode === 'untargeted') {
      add('misclassification', p.misclassificationRate);
      add('transfer', p.transferRate);
    } else add('targeted success', p.targetedSuccessRate);
    return out;
  });
}

export function roundPoints(r: CampaignResults, series: string): RoundPoint[] {
  return r.rounds.flatMap((x): RoundPoint[] => [
    { round: x.round, measure: 'substitute accuracy', value: x.substituteAccuracy, series, attackQueries: x.attackQueries },
    { round: x.round, measure: 'agreement with victim', value: x.agreement, series, attackQueries: x.attackQueries },
  ]).filter((p) => Number.isFinite(p.value));
}

const card = (value: string, label: string) => `<div class="card"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;
const chart = (svg: string, caption = '') => `<figure class="chart">${svg}${caption ? `<figcaption>${caption}</figcaption>` : ''}</figure>`;

function summary(r: CampaignResults, wb?: CampaignResults): string {
  const u = pointNear(r.epsilons, 'untargeted');
  const best = bestTargeted(r.epsilons);
  const isWb = r.kind === 'whitebox';
  const cards = [
    card(pct(r.victimCleanAccuracy), 'victim clean accuracy'),
    ...(isWb ? [] : [card(pct(r.substituteCleanAccuracy), 'substitute accuracy'), card(pct(r.agreement), 'agreement (substitute vs victim)')]),
    card(num(r.queries.attack), 'attack queries (paid)'),
    card(num(r.queries.measurement), 'measurement queries'),
    card(u ? pct(u.misclassificationRate) : '—', `misclassification at ε ${u ? num(u.epsilon) : '—'}`),
    card(u ? pct(u.transferRate) : '—', `transfer at ε ${u ? num(u.epsilon) : '—'}`),
    card(best ? pct(best.rate) : '—', `best targeted success${best ? ` (ε ${num(best.epsilon)})` : ''}`),
  ];
  const v = r.victim;
  const victim = [v.url, v.model, v.arch, v.info ? `${v.info.dataset ?? 'dataset not named'}, ${v.info.classes} classes, input ${v.info.inputShape.join('×')}` : '']
    .filter(Boolean)
    .map((x) => esc(x))
    .join('<br>');
  const rows: [string, string][] = [
    ['victim', victim || '—'],
    ['dataset', r.dataset ? `${esc(r.dataset.name)} (${esc(r.dataset.kind)}): seed and evaluation images from its ${num(r.dataset.testImages)} test images, ${esc(r.dataset.shape.join('×'))}, ${num(r.dataset.classes)} classes` : '—'],
    ...(isWb ? [] : [['threat model', `${esc(r.threat ?? 'label')}: the campaign used ${r.threat === 'scores' ? 'every class\'s probability' : r.threat === 'topk' ? 'the top-k probabilities' : 'the top-1 label only'} of each answer${v.info ? ` (the victim answers ${esc(v.info.output)})` : ''}`] as [string, string]]),
    ['substitute', isWb ? 'none: the white-box baseline crafts on the victim itself' : esc(cfg(r, 'substitute') ?? '—')],
    ['attack', `${esc(cfg(r, 'attack') ?? '—')} (steps ${esc(cfg(r, 'steps') ?? '—')}, target class ${esc(cfg(r, 'targetClass') ?? '—')})`],
    ['queries', `${num(r.queries.attack)} attack, ${num(r.queries.measurement)} measurement, ${num(r.queries.cached)} answered from cache`],
    ...(r.queryPlan ? [plannedRow(r.queryPlan)] : []),
    ['backend', `${esc(r.backend)}, ${esc(r.threads)} thread(s) on ${esc(r.cores)} core(s)`],
    ['seed', esc(r.seed)],
    ['duration', `${seconds(r.durationSeconds)} (finished ${esc(r.createdAt)})`],
    ['phases', Object.entries(r.phases).map(([k, s]) => `${esc(k)} ${seconds(s)}`).join(', ') || '—'],
    ['versions', Object.entries(r.versions).map(([k, s]) => `${esc(k)} ${esc(s)}`).join(', ')],
  ];
  if (wb) rows.push(['white-box baseline', `${esc(wb.name)}: victim clean accuracy ${pct(wb.victimCleanAccuracy)}, ${seconds(wb.durationSeconds)}`]);
  // A measure the budget cut (allowPartial) comes first, so no figure below is taken as whole.
  const partial = (r.partial ?? []).map((p) => `<p class="note"><b>PARTIAL</b>: ${esc(p.measure)} measured ${num(p.measured)} of ${num(p.planned)} ${esc(p.unit)} before the key’s budget ran out; its figures are over those only.</p>`);
  return `${partial.join('')}<div class="cards">${cards.join('')}</div>${kvTable(rows)}`;
}

/** Planned (from the settings, before the first query) beside paid, by purpose. */
function plannedRow(q: NonNullable<CampaignResults['queryPlan']>): [string, string] {
  const one = (name: string, p: { planned: number; atMost: boolean; paid: number }) => `${name}: ${num(p.paid)} paid of ${p.atMost ? 'at most ' : ''}${num(p.planned)} planned`;
  const budget = q.budget ? `; key budget at the start: ${num(q.budget.used)} used of ${q.budget.limit === null ? 'unlimited' : num(q.budget.limit)}` : '; key budget not known';
  return ['planned vs paid', `${one('attack', q.attack)}; ${one('measurement', q.measurement)}${budget}`];
}

function sweepTable(r: CampaignResults, wb?: CampaignResults): string {
  const match = (p: SweepPoint) => wb?.epsilons.find((q) => q.mode === p.mode && Math.abs(q.epsilon - p.epsilon) < 1e-9);
  const head = ['attack', 'ε', 'misclassification', 'transfer', 'targeted success', 'success on crafting model', 'mean L2', 'measurement queries'];
  if (wb) head.push('white-box misclassification', 'white-box transfer', 'white-box targeted');
  const rows = r.epsilons.map((p) => {
    const row = [esc(p.mode), num(p.epsilon), pct(p.misclassificationRate), pct(p.transferRate), pct(p.targetedSuccessRate), pct(p.craftModelSuccessRate), p.meanL2 === undefined || p.meanL2 === null ? '—' : num(p.meanL2, 2), num(p.measurementQueries)];
    const q = match(p);
    if (wb) row.push(pct(q?.misclassificationRate), pct(q?.transferRate), pct(q?.targetedSuccessRate));
    return row;
  });
  return table(head, rows);
}

async function epsilonSection(r: CampaignResults, wb?: CampaignResults): Promise<string> {
  const points = [...curvePoints(r.epsilons, r.kind === 'whitebox' ? SERIES.whitebox : SERIES.blackbox), ...(wb ? curvePoints(wb.epsilons, SERIES.whitebox) : [])];
  const explain =
    '<p>Misclassification: share of adversarial images the victim labels wrongly. Transfer: the same among images the victim ' +
    'labelled correctly when clean. Targeted success: share the victim puts into the chosen target class. Rates with an empty ' +
    'denominator are shown as “—” and left out of the charts.</p>';
  const body = points.length ? chart(await svgOf(epsilonCurves(points))) : '<p class="note">No sweep point has a defined rate.</p>';
  return explain + body + sweepTable(r, wb);
}

async function roundsSection(r: CampaignResults): Promise<string> {
  if (r.rounds.length === 0) return '<p class="note">No substitute was trained in this run.</p>';
  const rows = r.rounds.map((x) => [
    num(x.round), num(x.substituteSize), num(x.attackQueries), pct(x.substituteAccuracy), pct(x.agreement), num(x.lambda), seconds(x.trainSeconds), seconds(x.augmentSeconds),
  ]);
  const head = ['round', 'training set', 'attack queries', 'substitute accuracy', 'agreement', 'λ', 'training', 'augmentation'];
  return chart(await svgOf(roundsChart(roundPoints(r, r.name)))) + table(head, rows);
}

async function perClassSection(r: CampaignResults): Promise<string> {
  const pick = (mode: SweepPoint['mode']) => {
    const eps = pointNear(r.epsilons, mode)?.epsilon ?? 0.3;
    return r.perClass.filter((c) => c.mode === mode).sort((a, b) => Math.abs(a.epsilon - eps) - Math.abs(b.epsilon - eps))[0];
  };
  const tables = (['untargeted', 'targeted'] as const).map(pick).filter((t) => t !== undefined);
  if (tables.length === 0) return '<p class="note">No per-class tables in this run.</p>';
  const parts: string[] = [];
  for (const t of tables) {
    const what = `${t.mode}, ε ${num(t.epsilon)}`;
    const heat = await svgOf(confusionHeatmap(t.matrix, `true class × victim label (${what})`));
    const bars = await svgOf(perClassBars(t.transferRate, `transfer rate per true class (${what})`));
    const missing = t.transferRate.flatMap((x, i) => (x === null ? [i] : []));
    const note = missing.length ? `${missing.length > 1 ? 'Classes' : 'Class'} ${missing.join(', ')} ${missing.length > 1 ? 'have' : 'has'} no image the victim labelled correctly when clean: no transfer rate.` : '';
    parts.push(`<h3>${esc(t.mode === 'untargeted' ? 'Untargeted' : 'Targeted')} attack, ε ${esc(num(t.epsilon))}</h3>`);
    parts.push(`<div class="row">${chart(heat)}${chart(bars, esc(note))}</div>`);
  }
  const head = ['true class', ...tables.map((t) => `transfer, ${esc(t.mode)} ε ${esc(num(t.epsilon))}`)];
  const names = r.dataset?.classNames ?? r.victim.info?.classNames;
  const className = (c: number) => (names?.[c] && names[c] !== String(c) ? `${c} ${esc(names[c])}` : String(c));
  const rows = Array.from({ length: Math.max(...tables.map((t) => t.transferRate.length)) }, (_, c) => [className(c), ...tables.map((t) => pct(t.transferRate[c]))]);
  return parts.join('\n') + table(head, rows);
}

function gridSection(store: RunStore, r: CampaignResults): string {
  const refs = gridPictures(store, r);
  if (refs.length === 0) return '<p class="note">No image grids in this run.</p>';
  return refs.map((p) => pictureHtml(store, p)).join('\n');
}

function atlasSection(r: CampaignResults, withBaseline: boolean): string {
  const rows = atlasTechniques(r, withBaseline).map(([id, name]) => [
    `<a href="https://atlas.mitre.org/techniques/${esc(id)}" rel="noreferrer">${esc(id)}</a>`,
    esc(name),
  ]);
  const why = withBaseline
    ? 'The techniques of MITRE ATLAS this run exercised; the white-box baseline beside it adds AML.T0043.000.'
    : r.kind === 'whitebox'
      ? 'The techniques of MITRE ATLAS this run exercised. A white-box baseline reads the victim’s weights: it neither queries the API nor builds a proxy.'
      : 'The techniques of MITRE ATLAS this run exercised.';
  return `<p>${esc(why)}</p>` + table(['technique', 'name'], rows);
}

/** The page for a run; its pictures are read from the run's store. */
export async function buildReport(store: RunStore, r: CampaignResults, opts: ReportOptions = {}): Promise<string> {
  const wb = opts.whitebox;
  const sections: [string, string, string][] = [
    ['summary', 'Summary', summary(r, wb)],
    ['epsilon', 'Attack success against ε', await epsilonSection(r, wb)],
    ['rounds', 'Substitute training', await roundsSection(r)],
    ['perclass', 'Per-class transfer', await perClassSection(r)],
    ['boundary', 'Decision boundary: victim vs substitute', await boundarySection(store, r.boundary, classesOf(r))],
    ['images', 'Image grids', gridSection(store, r)],
    ['config', 'Configuration', `<pre>${esc(toYaml(redact(r.config)))}</pre>`],
    ['atlas', 'MITRE ATLAS', atlasSection(r, wb !== undefined)],
  ];
  const kind = r.kind === 'whitebox' ? 'white-box baseline' : 'black-box transfer campaign';
  const body = [
    `<h1>transferlab report: ${esc(r.name)}</h1>`,
    `<p class="sub">${esc(kind)} · ${esc(r.createdAt)}</p>`,
    `<nav>${sections.map(([id, title]) => `<a href="#${id}">${esc(title)}</a>`).join('')}</nav>`,
    ...sections.map(([id, title, html]) => `<section id="${id}"><h2>${esc(title)}</h2>\n${html}</section>`),
  ].join('\n');
  return page(`transferlab: ${r.name}`, body);
}

/** Write report.html into the run (a store, or a run folder's path) and return where it is. */
export async function writeReport(run: RunStore | string, results: CampaignResults, opts: ReportOptions = {}): Promise<string> {
  const store = runStore(run);
  store.write('report.html', await buildReport(store, results, opts));
  return store.where('report.html');
}
