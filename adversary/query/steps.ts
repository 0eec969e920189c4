/**
 * The query attack's steps (run.ts runs them in order): budget → select, the two every run begins
 * with (run/steps.ts, the campaign's own), then aim (targets, and the pool images a targeted search
 * starts from) → search (RayS or HopSkipJump on the victim, lock-step over its label API) → report
 * (images.json, adversarial.u8, results.json). Like the campaign's, each step is a function of the
 * state before it and of the run store, and whatever must outlive the process goes to the store.
 * Every query goes through the oracle, whose answer cache keeps each paid answer in the run folder.
 */
import { TransferlabError } from '../../shared/errors.js';
import { toPixels } from '../../shared/datasets/index.js';
import { summarise } from '../../shared/datasets/types.js';
import { accuracy } from '../../shared/metrics.js';
import { createRng } from '../../shared/random.js';
import { provenance } from '../../shared/versions.js';
import { paidCounts, type CountingOracle } from '../oracle/core.js';
import { plannedVsPaid, putResults, type Unversioned } from '../campaign/results.js';
import type { RunClock } from '../run/clock.js';
import { onCut } from '../run/measure-cut.js';
import { withoutKey, type RunStart, type Selection, type Step } from '../run/steps.js';
import { putJson } from '../run/store.js';
import { runQueryAttack, type AttackTargets } from './attack.js';
import { queryThreat, queryAttackPlan, type ImageRecord, type QueryAttackConfig, type QueryAttackResults } from './config.js';
import { budgetCurve, epsilonSummaries, queriesForRate } from './curves.js';
import type { LockStepResult } from './search.js';
import { runSquare } from './square.js';
import type { Scorer } from '../../shared/attacks/square.js';

/** The victim's scores through the oracle, paid as attack queries (NaN where a top-k answer named no score). */
function scoresOf(oracle: CountingOracle): Scorer {
  const o = oracle as CountingOracle & { scores?: (images: Float32Array, count: number, purpose: 'attack') => Promise<Float32Array> };
  if (!o.scores) throw new TransferlabError('threat_unavailable', 'Square Attack needs the victim\'s scores; this oracle answers labels only');
  const scores = o.scores.bind(o);
  return (images, count) => scores(images, count, 'attack');
}
import { ProbeShaper } from './evasion.js';

/** The ε blinding's noise stays within: the one success is reported at (docs/query-attacks.md). */
const EVASION_EPSILON = 0.3;

/** Seconds by kind of work: the clean labels (select counts them as `measurement`, as in a campaign) and the searches, the starting pool's labels included. */
export type QueryPhases = { measurement: number; search: number };

export interface Begun extends RunStart {
  config: QueryAttackConfig;
  oracle: CountingOracle;
  /** The run's time over all its sessions (a resumed run's earlier ones included). */
  clock: RunClock;
  phases: QueryPhases;
  /** Attack queries the run folder had paid when this session began: what this session pays is counted from here. */
  paidAtStart: number;
}

export interface Selected extends Begun, Selection {}

export interface Aimed extends Selected {
  target: AttackTargets;
  /** Attack queries this session paid for the clean labels and for the starting pool. */
  cleanLabels: number;
  startingPool: number;
}

export interface Searched extends Aimed {
  run: LockStepResult;
  /** Attack queries this session paid for the searches' probes. */
  probes: number;
}

const since = (t: number) => (performance.now() - t) / 1000;
const paidAttack = (s: { oracle: CountingOracle }) => paidCounts(s.oracle).attack;

export function begin(config: QueryAttackConfig, oracle: CountingOracle, log: (line: string) => void, clock: RunClock): Begun {
  return {
    config,
    oracle,
    hooks: { log },
    clock,
    phases: { measurement: 0, search: 0 },
    plan: queryAttackPlan(config),
    budget: null,
    allowPartial: config.allowPartial,
    // The campaign's evaluation images for the same seed and seed-set size: the same images, the same order.
    choice: { seed: config.seed, seedSize: config.seedSize, evalSize: config.images, dataset: config.dataset, cleanPurpose: 'attack' },
    saved: { kind: 'query-attack', ...withoutKey(config) },
    // Square reads scores: a label-only victim is refused before anything is paid (top-k answers will do).
    threat: queryThreat(config),
    paidAtStart: paidAttack({ oracle }),
  };
}

/** Per image a class to reach, drawn from the pool's labels, and the pool image of it the search starts from. */
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

/** What the searches leave: the victim's clean label (untargeted), or a target and a pool image of it labelled by the victim (targeted). */
export const aim: Step<Selected, Aimed> = async (s) => {
  const { evalSet, cleanVictim } = s;
  // select paid for the clean labels and nothing else since the session began (budget is free).
  const cleanLabels = paidAttack(s) - s.paidAtStart;
  const target: AttackTargets = { images: evalSet.images, count: evalSet.count, original: cleanVictim };
  if (!s.config.targeted) return { ...s, target, cleanLabels, startingPool: 0 };
  const t = performance.now();
  const pool = s.seedSet;
  const before = paidAttack(s);
  const poolLabels = await s.oracle.label(pool.images, pool.count, 'attack');
  const startingPool = paidAttack(s) - before;
  s.phases.search += since(t);
  const pixels = evalSet.images.length / evalSet.count;
  return { ...s, target: { ...target, ...startingPoints(s.config.seed, cleanVictim, pool.images, poolLabels, pixels) }, cleanLabels, startingPool };
};

/** RayS or HopSkipJump on every image at once, each round's probes one batch for the victim. */
export const search: Step<Aimed, Searched> = async (s) => {
  const { config, evalSet } = s;
  s.hooks.log(`${config.attack} (${config.norm}, ${config.targeted ? 'targeted' : 'untargeted'}) on ${evalSet.count} images of ${evalSet.shape.join('×')}, ≤ ${config.queriesPerImage} queries each`);
  const before = paidAttack(s);
  const t = performance.now();
  let lastLog = t;
  let counted = t;
  const shaper =
    config.blinding || config.adaptive
      ? new ProbeShaper({ blinding: config.blinding, adaptive: config.adaptive, epsilon: EVASION_EPSILON, seed: config.seed, shape: evalSet.shape })
      : undefined;
  const progress = (round: number, asked: number, active: number) => {
    if (performance.now() - lastLog < 5000) return;
    lastLog = performance.now();
    // Work done so far is kept in the answer cache: the clock records its time too.
    s.phases.search += since(counted);
    counted = lastLog;
    s.clock.tick(s.phases);
    s.hooks.log(`  round ${round}: ${asked} probes, ${active} images still searching, ${paidAttack(s)} attack queries paid`);
  };
  const label = (images: Float32Array, count: number) => s.oracle.label(images, count, 'attack');
  const run =
    config.attack === 'square'
      ? await runSquare({ ...config, format: s.oracle.format }, s.target, s.evalSet.shape, scoresOf(s.oracle), label, progress)
      : // A victim that blocks the key ends the searches with what they found: the attack's outcome against that defence.
        await runQueryAttack({ attack: config.attack, norm: config.norm, queriesPerImage: config.queriesPerImage, seed: config.seed, stopAt: config.stopAt }, s.target, label, progress, shaper, true);
  if (run.stopped === 'key_blocked') s.hooks.log(`the victim blocked ${config.keysFile ? 'every key of the keys file' : 'the key'} (403 extraction_suspected): the searches end with what they had found`);
  s.phases.search += since(counted);
  return { ...s, run, probes: paidAttack(s) - before };
};

/** images.json, adversarial.u8 and results.json (through the contract); a search the budget cut stops here, or (allowPartial) keeps its finished images. */
export const report: Step<Searched, QueryAttackResults> = async (s, store) => {
  const { config, evalSet, cleanVictim: clean, run, info } = s;
  // A search the budget stopped holds only where it had got to: stop, or (allowPartial) keep the finished images only.
  const kept = run.outcomes.flatMap((o, i) => (o.end === 'key_budget' ? [] : [i]));
  const partial = run.stopped === 'budget_exhausted'
    ? onCut(new TransferlabError('budget_exhausted', 'the victim refused a round of probes for the key\'s budget', 429), config.allowPartial,
        'query-attack', `${config.attack} query attack`, kept.length, evalSet.count)
    : null;
  if (partial) s.hooks.log(`PARTIAL: the key's budget ran out; figures over the ${kept.length} of ${evalSet.count} images whose searches finished`);

  const records: ImageRecord[] = run.outcomes.map((o, i) => ({
    testIndex: s.split.evalSet[i],
    truth: evalSet.labels[i],
    clean: clean[i],
    target: s.target.targets ? s.target.targets[i] : null,
    label: o.label,
    linf: o.linf,
    l2: o.l2,
    queries: o.queries,
    end: o.end,
    trace: o.trace,
    flagged: o.flagged,
    firstFlagged: o.firstFlagged,
  }));
  const pixels = evalSet.images.length / evalSet.count;
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
  const paid = paidCounts(s.oracle);
  const matchEps = 0.3;
  const matchQ = config.matchRate === undefined ? null : queriesForRate(curveInput, matchEps, config.matchRate);
  const results: Unversioned<QueryAttackResults> = {
    kind: 'query-attack',
    name: store.name,
    createdAt: new Date().toISOString(),
    ...provenance(config.seed),
    victim: { url: config.victim, info },
    dataset: summarise(s.dataset),
    config: withoutKey(config),
    queries: { ...paid, cleanLabels: s.cleanLabels, startingPool: s.startingPool, probes: s.probes },
    stopped: run.stopped,
    queryPlan: plannedVsPaid(s.plan, paid, s.budget),
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
    detection: (() => {
      const r = s.oracle.rejections();
      return { flagged: run.flagged, refusedRequests: r.requests, refusedImages: r.refused, resamples: run.resamples, paidByKey: s.oracle.paidByKey() };
    })(),
    rounds: run.rounds,
    durationSeconds: s.clock.totalSeconds(),
    phases: s.clock.totalPhases(s.phases),
  };
  return putResults<QueryAttackResults>(store, results);
};
