/**
 * `query-attack`: a decision-based attack on the victim itself, through its label API, as a run
 * folder like a campaign's: config.json (never the key), answers.jsonl + queries.jsonl (the answer
 * cache and ledger), results.json, images.json (per image: distances, queries, trace) and
 * adversarial.u8 (each image's best adversarial example as 8-bit pixels, zeros when none).
 *
 * Resuming replays the seeded searches over the answer cache: every probe already paid for is
 * answered from it for free, so the run continues where it stopped without paying twice.
 */
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { parseSettings } from '../../shared/settings-errors.js';
import { victimUrl } from '../oracle/victim-url.js';
import { accuracy } from '../../shared/metrics.js';
import { adversarySplit, loadMnist, subset, toPixels } from '../../shared/datasets/index.js';
import { createRng } from '../../shared/random.js';
import { provenance } from '../../shared/versions.js';
import type { CountingOracle } from '../oracle/core.js';
import { QUERY_ATTACKS, runQueryAttack, type AttackTargets } from './attack.js';
import { budgetCurve, CURVE_EPSILONS, epsilonSummaries, queriesForRate } from './curves.js';
import { plannedVsPaid, putResults, type QueryAttackRunResults, type Unversioned } from '../campaign/results.js';
import { startRunClock } from '../run/clock.js';
import { putJson, runStore, type RunStore } from '../run/store.js';
import { onCut } from '../run/measure-cut.js';
import { checkPlan, planOf, type QueryPlan } from '../run/query-plan.js';

/** The attack's cost from its settings: every image's clean label, the targeted pool, and at most queriesPerImage probes each. */
export function queryAttackPlan(c: QueryAttackConfig, images = c.images): QueryPlan {
  return planOf([
    { purpose: 'attack', what: 'clean labels', queries: images, atMost: false },
    { purpose: 'attack', what: 'starting pool', queries: c.targeted ? c.seedSize : 0, atMost: false },
    { purpose: 'attack', what: `${c.attack} probes`, queries: images * c.queriesPerImage, atMost: true },
  ]);
}

export const queryAttackSchema = z
  .strictObject({
    victim: victimUrl.default('http://127.0.0.1:8080'),
    apiKey: z.string().min(1).optional(),
    format: z.enum(['uint8', 'float32']).default('uint8'),
    attack: z.enum(QUERY_ATTACKS).default('rays'),
    norm: z.enum(['linf', 'l2']).default('linf'),
    targeted: z.boolean().default(false),
    images: z.number().int().min(1).max(9000).default(100),
    queriesPerImage: z.number().int().min(1).max(100_000).default(1000),
    seed: z.number().int().min(0).default(1),
    /** Seed-set size of the campaign whose evaluation images are attacked (the same images, the same order). */
    seedSize: z.number().int().min(10).max(1000).default(150),
    epsilons: z.array(z.number().gt(0).lte(1)).min(1).default(CURVE_EPSILONS),
    stopAt: z.number().gt(0).lte(1).optional(),
    matchRate: z.number().gt(0).lte(1).optional(),
    /** Start past a known budget too small for the plan, and record a search the budget cuts as partial instead of stopping. */
    allowPartial: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.attack === 'rays' && c.norm !== 'linf') ctx.addIssue({ code: 'custom', path: ['norm'], message: 'RayS is an L∞ attack: norm must be linf' });
    if (c.seedSize + c.images > 10_000) ctx.addIssue({ code: 'custom', path: ['images'], message: 'seedSize + images must be ≤ 10000 test images' });
  });

export type QueryAttackConfig = z.infer<typeof queryAttackSchema>;
export type QueryAttackInput = z.input<typeof queryAttackSchema>;

export function resolveQueryAttackConfig(input: QueryAttackInput): QueryAttackConfig {
  return parseSettings(queryAttackSchema, input, 'query-attack settings');
}

export interface ImageRecord {
  /** Index among the MNIST test images. */
  testIndex: number;
  truth: number;
  clean: number;
  target: number | null;
  label: number | null;
  linf: number | null;
  l2: number | null;
  queries: number;
  end: string;
  trace: [number, number, number, number][];
}

/** results.json of a query attack: its shape is the contract's (shared/protocol/results.ts). */
export type QueryAttackResults = QueryAttackRunResults;

/** Where the targeted attack starts: pool images (the seed set) and the victim's labels of them. */
function startingPoints(seed: number, clean: Int32Array, poolImages: Float32Array, poolLabels: Int32Array, pixels: number): { targets: Int32Array; starts: Float32Array[] } {
  const rng = createRng(seed ^ 0x7a29);
  const targets = new Int32Array(clean.length);
  const starts: Float32Array[] = [];
  for (let i = 0; i < clean.length; i++) {
    const others = [...poolLabels.keys()].filter((j) => poolLabels[j] !== clean[i]);
    if (others.length === 0) throw new TransferlabError('no_target', 'the victim labels every pool image as the image\'s own class; no target to aim at');
    const j = others[Math.floor(rng() * others.length)];
    targets[i] = poolLabels[j];
    starts.push(poolImages.slice(j * pixels, (j + 1) * pixels));
  }
  return { targets, starts };
}

export async function runQueryAttackCampaign(config: QueryAttackConfig, folder: RunStore | string, oracle: CountingOracle, log: (line: string) => void): Promise<QueryAttackResults> {
  const store = runStore(folder);
  const clock = startRunClock(store);
  try {
    return await attackAndRecord(config, store, oracle, log, () => clock.totalSeconds(), () => clock.tick());
  } finally {
    clock.tick();
    clock.close();
  }
}

async function attackAndRecord(
  config: QueryAttackConfig,
  store: RunStore,
  oracle: CountingOracle,
  log: (line: string) => void,
  /** Seconds over all the run's sessions so far. */
  elapsed: () => number,
  /** Records this session's time so far (at each progress line: work kept in the answer cache). */
  tick: () => void,
): Promise<QueryAttackResults> {
  const { apiKey: _secret, ...saved } = config;
  if (!store.exists('config.json')) putJson(store, 'config.json', { kind: 'query-attack', ...saved });
  const info = await oracle.info();
  if (info.classes !== 10 || info.inputShape.join('x') !== '28x28x1') {
    throw new TransferlabError('victim_mismatch', `the victim serves ${info.dataset} ${info.inputShape.join('×')} with ${info.classes} classes; this attack needs MNIST 28×28×1, 10 classes`);
  }
  const pixels = 784;
  const test = loadMnist('test');
  const split = adversarySplit(config.seed, config.seedSize, config.images);
  const evalSet = subset(test, split.evalSet);
  const paidAttack = () => oracle.counts().attack + oracle.priorCounts().attack;
  const plan = queryAttackPlan(config, evalSet.count);
  const budget = await checkPlan(plan, oracle, config.allowPartial, log);

  // The attacker's starting knowledge: the victim's label of each image (and of its own pool images).
  let before = paidAttack();
  const clean = await oracle.label(evalSet.images, evalSet.count, 'attack');
  const cleanLabels = paidAttack() - before;
  const target: AttackTargets = { images: evalSet.images, count: evalSet.count, original: clean };
  let startingPool = 0;
  if (config.targeted) {
    const pool = subset(test, split.seedSet);
    before = paidAttack();
    const poolLabels = await oracle.label(pool.images, pool.count, 'attack');
    startingPool = paidAttack() - before;
    Object.assign(target, startingPoints(config.seed, clean, pool.images, poolLabels, pixels));
  }

  log(`${config.attack} (${config.norm}, ${config.targeted ? 'targeted' : 'untargeted'}) on ${evalSet.count} images, ≤ ${config.queriesPerImage} queries each`);
  before = paidAttack();
  let lastLog = performance.now();
  const run = await runQueryAttack(
    { attack: config.attack, norm: config.norm, queriesPerImage: config.queriesPerImage, seed: config.seed, stopAt: config.stopAt },
    target,
    (images, count) => oracle.label(images, count, 'attack'),
    (round, asked, active) => {
      if (performance.now() - lastLog < 5000) return;
      lastLog = performance.now();
      tick();
      log(`  round ${round}: ${asked} probes, ${active} images still searching, ${paidAttack()} attack queries paid`);
    },
  );
  const probes = paidAttack() - before;
  // A search the budget stopped holds only where it had got to: stop, or (allowPartial) keep the finished images only.
  const kept = run.outcomes.flatMap((o, i) => (o.end === 'key_budget' ? [] : [i]));
  const partial = run.stopped
    ? onCut(new TransferlabError('budget_exhausted', 'the victim refused a round of probes for the key\'s budget', 429), config.allowPartial,
        'query-attack', `${config.attack} query attack`, kept.length, evalSet.count)
    : null;
  if (partial) log(`PARTIAL: the key's budget ran out; figures over the ${kept.length} of ${evalSet.count} images whose searches finished`);

  const records: ImageRecord[] = run.outcomes.map((o, i) => ({
    testIndex: split.evalSet[i],
    truth: evalSet.labels[i],
    clean: clean[i],
    target: target.targets ? target.targets[i] : null,
    label: o.label,
    linf: o.linf,
    l2: o.l2,
    queries: o.queries,
    end: o.end,
    trace: o.trace,
  }));
  const adversarial = new Uint8Array(evalSet.count * pixels);
  run.outcomes.forEach((o, i) => o.image && adversarial.set(toPixels(o.image), i * pixels));
  store.write('adversarial.u8', adversarial);
  putJson(store, 'images.json', records);

  const curveInput = {
    outcomes: kept.map((i) => run.outcomes[i]),
    truth: Int32Array.from(kept, (i) => evalSet.labels[i]),
    clean: Int32Array.from(kept, (i) => clean[i]),
    queriesPerImage: config.queriesPerImage,
  };
  const sorted = curveInput.outcomes.map((o) => o.queries).sort((a, b) => a - b);
  const now = oracle.counts();
  const prior = oracle.priorCounts();
  const matchEps = 0.3;
  const matchQ = config.matchRate === undefined ? null : queriesForRate(curveInput, matchEps, config.matchRate);
  const results: Unversioned<QueryAttackResults> = {
    kind: 'query-attack',
    name: store.name,
    createdAt: new Date().toISOString(),
    ...provenance(config.seed),
    victim: { url: config.victim, info },
    config: saved,
    queries: { attack: now.attack + prior.attack, measurement: now.measurement + prior.measurement, cached: now.cached, cleanLabels, startingPool, probes },
    stopped: run.stopped,
    queryPlan: plannedVsPaid(plan, { attack: now.attack + prior.attack, measurement: now.measurement + prior.measurement, cached: now.cached }, budget),
    partial,
    images: kept.length,
    victimCleanAccuracy: accuracy(clean, evalSet.labels),
    medianQueriesPerImage: sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null,
    epsilons: epsilonSummaries(curveInput, config.epsilons),
    curve: budgetCurve(curveInput, undefined, config.epsilons),
    match:
      config.matchRate === undefined
        ? null
        : { epsilon: matchEps, rate: config.matchRate, queriesPerImage: matchQ, totalQueries: matchQ === null ? null : (matchQ + 1) * kept.length },
    rounds: run.rounds,
    durationSeconds: elapsed(),
  };
  return putResults<QueryAttackResults>(store, results);
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '  –  ' : `${(100 * v).toFixed(1)}%`);

/** The terminal summary: success against queries per image, per ε. */
export function queryAttackSummary(r: QueryAttackResults): string {
  const eps = r.config.epsilons;
  const head = ['queries/image', ...eps.map((e) => `ε ${e.toFixed(2)}`), 'median L∞', 'median L2'];
  const rows = r.curve.map((p) => [
    String(p.queriesPerImage),
    ...eps.map((e) => pct(p.success[e.toFixed(2)])),
    p.medianLinf === null ? '–' : p.medianLinf.toFixed(3),
    p.medianL2 === null ? '–' : p.medianL2.toFixed(3),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) => cells.map((v, c) => v.padStart(widths[c])).join('  ');
  const med = r.epsilons.map((e) => `ε ${e.epsilon}: success ${pct(e.success)}, median ${e.medianQueries ?? '–'} queries`).join('; ');
  return [line(head), ...rows.map(line), '', med].join('\n');
}
