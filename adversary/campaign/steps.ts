import type * as tf from '@tensorflow/tfjs';
import { chooseTargets } from '../../shared/attacks/index.js';
import { ensembleOf } from '../../shared/attacks/losses.js';
import { summarise } from '../../shared/datasets/types.js';
import { accuracy, agreement } from '../../shared/metrics.js';
import { fromLayers, labelImages, type Model } from '../../shared/model/model.js';
import type { TrainOptions } from '../../shared/model/training.js';
import { provenance } from '../../shared/versions.js';
import { TransferlabError } from '../../shared/errors.js';
import { measureBoundary, type MeasuredBoundary } from './boundary.js';
import { latestCheckpoint, roundRecords, saveCheckpoint, type RoundRecord } from './checkpoints.js';
import { substituteMembers, type CampaignConfig } from './config.js';
import { snapshotMembers, trainMembers, type MemberRecord } from './ensemble.js';
import { startCraftSplit } from './craft-split.js';
import { paidCounts, type CountingOracle } from '../oracle/core.js';
import type { QueryCounts } from '../oracle/oracle.js';
import { campaignPlan } from './plan.js';
import { budget, select, withoutKey, type RunStart, type Selection, type Step } from '../run/steps.js';
import { plannedVsPaid, writeResults, type CampaignResults, type Unversioned } from './results.js';
import type { RunClock } from '../run/clock.js';
import { writeBoundaryMaps } from '../report/run-pictures.js';
import { trainSubstitute, type RoundsContext } from './substitute.js';
import { perClassTables, sweep, sweepSettings, type SweepOutcome } from './transfer.js';

/**
 * The campaign's steps (campaign.ts runs them in order). Each is a function of the state the steps
 * before it built and of the run store: it adds what it found to the state, and whatever must
 * outlive the process it puts in the store, never on disk itself. The victim is asked only through
 * the oracle, whose answer cache keeps every paid answer in the run folder.
 */
export interface CampaignHooks {
  log: (line: string) => void;
  onBatchEnd?: TrainOptions['onBatchEnd'];
  onRound?: (r: RoundRecord) => void;
}

export type { Step } from '../run/steps.js';

/** Seconds spent, by kind of work (results.json's `phases`). */
export type Phases = {
  labelling: number;
  training: number;
  augmentation: number;
  crafting: number;
  measurement: number;
  boundary: number;
};

/** What every step may read: the settings, the oracle, the caller's hooks and the clock (and what budget and select read, run/steps.ts). */
export interface Begun extends RunStart {
  config: CampaignConfig;
  oracle: CountingOracle;
  hooks: CampaignHooks;
  /** The run's time over all its sessions (a resumed run's earlier ones included). */
  clock: RunClock;
  phases: Phases;
}

/** After select (run/steps.ts, shared with the query attack): the victim, the attacker's dataset, the seed and evaluation sets, the clean labels. */
export interface Selected extends Begun, Selection {}

export interface Seeded extends Selected {
  /** Where the substitute rounds start: round 0 with the labelled seed set, or a resumed checkpoint. */
  start: RoundsContext['start'];
}

export interface Fitted extends Seeded {
  model: tf.LayersModel;
  /** Every point the victim labelled for the substitute, and its labels. */
  labelled: Float32Array;
  answers: Int32Array;
  /** With threat topk/scores: the victim's probabilities of the same points. */
  scores?: Float32Array;
}

export interface Combined extends Fitted {
  members: { models: tf.LayersModel[]; records: MemberRecord[] };
  /** The model the attack crafts on: the substitute, or the ensemble of it and its members. */
  substitute: Model;
  substituteClean: Int32Array;
}

export interface Transferred extends Combined {
  targets: Int32Array;
  outcome: SweepOutcome;
}

export interface Measured extends Transferred {
  boundary: MeasuredBoundary | null;
}

const since = (t: number) => (performance.now() - t) / 1000;

export function begin(config: CampaignConfig, oracle: CountingOracle, hooks: CampaignHooks, clock: RunClock): Begun {
  return {
    config,
    oracle,
    hooks,
    clock,
    phases: { labelling: 0, training: 0, augmentation: 0, crafting: 0, measurement: 0, boundary: 0 },
    plan: campaignPlan(config),
    budget: null,
    allowPartial: config.allowPartial,
    // Crafting from the victim's own answers is something the attacker pays for.
    choice: { seed: config.seed, seedSize: config.seedSize, evalSize: config.evalSize, dataset: config.dataset, cleanPurpose: config.craftLabel === 'oracle' ? 'attack' : 'measurement' },
    saved: withoutKey(config),
    threat: config.threat,
  };
}

/** The steps every run begins with: the planned cost against the key's budget, then the images and their clean labels. */
export { budget, select };

/** Totals over the run folder's whole life, so a resumed run reports what the campaign cost in all. */
export function paid(s: Begun): QueryCounts {
  return paidCounts(s.oracle);
}

/** With threat topk/scores: the victim's probabilities of images, paid as attack queries (NaN where a top-k answer named none). */
function scoresFor(s: Begun): RoundsContext['queryScores'] {
  if (s.config.threat === 'label') return undefined;
  const oracle = s.oracle as CountingOracle & { scores?: (images: Float32Array, count: number, purpose: 'attack') => Promise<Float32Array> };
  if (!oracle.scores) throw new TransferlabError('threat_unavailable', `threat ${s.config.threat}: this oracle answers labels only`);
  const scores = oracle.scores.bind(oracle);
  return (images, count) => scores(images, count, 'attack');
}

/** The victim's labels (and, threat topk/scores, probabilities) of the seed set, or the last finished round when the run is resumed. */
export const seed: Step<Selected, Seeded> = async (s, store) => {
  const resumed = await latestCheckpoint(store);
  if (resumed) {
    s.hooks.log(`resuming after round ${resumed.record.round} (${resumed.labels.length} labelled points on disk)`);
    return { ...s, start: { round: resumed.record.round, images: resumed.images, labels: resumed.labels, scores: resumed.scores, model: resumed.model } };
  }
  const t = performance.now();
  // Scores first: their answers hold the labels too, which the label call then reads from the cache.
  const scores = await scoresFor(s)?.(s.seedSet.images, s.seedSet.count);
  const labels = await s.oracle.label(s.seedSet.images, s.seedSet.count, 'attack');
  s.phases.labelling += since(t);
  s.hooks.log(`seed set: ${s.seedSet.count} images labelled by the victim${scores ? ` (with ${s.config.threat})` : ''}`);
  return { ...s, start: { round: 0, images: s.seedSet.images, labels, scores } };
};

/** Papernot's rounds (fit, then Jacobian augmentation labelled by the victim), each checkpointed. */
export const rounds: Step<Seeded, Fitted> = async (s, store) => {
  const { model, images, labels, scores } = await trainSubstitute({
    config: s.config,
    shape: s.shape,
    queryAttack: (x, count) => s.oracle.label(x, count, 'attack'),
    queryScores: scoresFor(s),
    attackQueries: () => paid(s).attack,
    evaluation: { images: s.evalSet.images, truth: s.evalSet.labels, victim: s.cleanVictim },
    start: s.start,
    checkpoint: async (c) => {
      await saveCheckpoint(store, c, substituteMembers(s.config)[0], s.dataset.name);
      s.clock.tick(s.phases);
    },
    onBatchEnd: s.hooks.onBatchEnd,
    onRound: s.hooks.onRound,
    phases: s.phases,
  });
  return { ...s, model, labelled: images, answers: labels, scores };
};

/** The ensemble's other members fit the same labelled points: more substitutes, not one more query. */
export const ensemble: Step<Fitted, Combined> = async (s, store) => {
  const t = performance.now();
  const members = await trainMembers({
    config: s.config,
    store,
    images: s.labelled,
    labels: s.answers,
    scores: s.scores,
    roundSizes: roundRecords(store).map((r) => r.substituteSize),
    shape: s.shape,
    evaluation: { images: s.evalSet.images, truth: s.evalSet.labels, victim: s.cleanVictim },
    log: s.hooks.log,
  });
  s.phases.training += since(t);
  const snapshots = await snapshotMembers({ config: s.config, store, shape: s.shape, evaluation: { images: s.evalSet.images, truth: s.evalSet.labels, victim: s.cleanVictim }, log: s.hooks.log });
  const substitute = ensembleOf([s.model, ...members.models, ...snapshots.models].map(fromLayers), s.config.combine);
  return {
    ...s,
    members: { models: [...members.models, ...snapshots.models], records: [...members.records, ...snapshots.records] },
    substitute,
    substituteClean: labelImages(substitute, s.evalSet.images, s.evalSet.count),
  };
};

/** Craft on the substitute, then let the victim judge the crafted images. */
export const transfer: Step<Combined, Transferred> = async (s) => {
  const { config, evalSet, cleanVictim } = s;
  const craftLabels = config.craftLabel === 'oracle' ? cleanVictim : s.substituteClean;
  const targets = chooseTargets(craftLabels, config.targetClass, config.seed, s.info.classes);
  const split = config.craftThreads === 2 && config.attack !== 'fgsm' ? await startCraftSplit(s.substitute, [s.model, ...s.members.models], config.combine) : null;
  let outcome;
  try {
    outcome = await sweep(
      s.substitute,
      { images: evalSet.images, truth: evalSet.labels, craftLabels, targets, cleanVictim },
      sweepSettings(config),
      (images, count) => s.oracle.label(images, count, 'measurement'),
      config.targeted ? ['untargeted', 'targeted'] : ['untargeted'],
      split,
    );
  } finally {
    await split?.close();
  }
  s.phases.crafting += outcome.craftSeconds;
  s.phases.measurement += outcome.measureSeconds;
  return { ...s, targets, outcome };
};

/** Where the victim's decision boundary lies relative to the substitute's (when enabled). */
export const boundary: Step<Transferred, Measured> = async (s) => {
  const t = performance.now();
  const measured = s.config.boundary.enabled
    ? await measureBoundary({
        config: s.config,
        substitute: s.substitute,
        evalSet: s.evalSet,
        classNames: s.dataset.classNames,
        cleanVictim: s.cleanVictim,
        substituteClean: s.substituteClean,
        oracle: s.oracle,
        log: s.hooks.log,
      })
    : null;
  s.phases.boundary += since(t);
  return { ...s, boundary: measured };
};

/** The boundary maps and image grids drawn, results.json and results.csv written. */
export const report: Step<Measured, CampaignResults> = async (s, store) => {
  const { config, evalSet, cleanVictim, substituteClean, members, outcome, info } = s;
  const boundaryResults = s.boundary ? writeBoundaryMaps(store, s.boundary, evalSet, s.dataset.classNames.length) : null;
  const recorded = roundRecords(store);
  const results: Unversioned<CampaignResults> = {
    kind: 'campaign',
    name: store.name,
    createdAt: new Date().toISOString(),
    ...provenance(config.seed),
    victim: { url: config.victim, info },
    dataset: summarise(s.dataset),
    // The settings as run, without the API key (or token): results.json is the file people share.
    config: withoutKey(config),
    threat: config.threat,
    queries: paid(s),
    victimCleanAccuracy: accuracy(cleanVictim, evalSet.labels),
    substituteCleanAccuracy: accuracy(substituteClean, evalSet.labels),
    // With several members, the ensemble's labels are what the attack crafts on.
    agreement: members.models.length ? agreement(substituteClean, cleanVictim) : (recorded.at(-1)?.agreement ?? null),
    ...(members.records.length ? { ensemble: { combine: config.combine, members: members.records } } : {}),
    rounds: recorded,
    epsilons: outcome.points,
    perClass: perClassTables(config.epsilons, evalSet.labels, cleanVictim, outcome, info.classes),
    boundary: boundaryResults,
    queryPlan: plannedVsPaid(s.plan, paid(s), s.budget),
    partial: [...(outcome.partial ? [outcome.partial] : []), ...(s.boundary?.partial ?? [])],
    durationSeconds: s.clock.totalSeconds(),
    phases: s.clock.totalPhases(s.phases),
  };
  return writeResults(store, results, { evalSet, classes: info.classes, outcome, targets: s.targets, cleanVictim });
};
