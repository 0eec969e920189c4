import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { chooseTargets, type AttackName } from '../shared/attacks/index.js';
import { MNIST_MODEL } from '../shared/model/architectures.js';
import { TransferlabError } from '../shared/errors.js';
import { ensembleOf, type CraftingLoss, type EnsembleCombine } from '../shared/attacks/losses.js';
import { agreement, type Rate } from '../shared/metrics.js';
import { IMAGE_SIZE, adversarySplit, loadMnist, subset, type ImageSet } from '../shared/datasets/index.js';
import { fromLayers, labelImages } from '../shared/model/model.js';
import { resolveConfig, type CampaignConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { snapshotMembers, trainMembers } from '../adversary/campaign/ensemble.js';
import { paidCounts, type CountingOracle } from '../adversary/oracle/core.js';
import { latestCheckpoint, roundRecords, saveCheckpoint } from '../adversary/campaign/checkpoints.js';
import { fileRunStore } from '../adversary/run/store.js';
import { trainSubstitute } from '../adversary/campaign/substitute.js';
import { sweep } from '../adversary/campaign/transfer.js';

/**
 * Train once, attack many times: a training setting's substitutes (the Papernot rounds, then any
 * ensemble members) are trained once into their own folder and kept, and every attack setting is then
 * crafted on the saved models and scored by the victim. The rounds and the scoring go through the same
 * oracle a campaign uses (answer cache included), so a re-run pays for nothing twice.
 */
export interface TrainedSubstitutes {
  config: CampaignConfig;
  models: tf.LayersModel[];
  attackQueries: number;
  /** Agreement with the victim of each member alone (first = the rounds' substitute). */
  memberAgreement: Rate[];
  trainSeconds: number;
  evalSet: ImageSet;
  cleanVictim: Int32Array;
}

export async function trainedSubstitutes(settings: CampaignInput, dir: string, oracle: CountingOracle, log: (s: string) => void): Promise<TrainedSubstitutes> {
  const config = resolveConfig({ ...settings, out: dir });
  const test = loadMnist('test');
  const split = adversarySplit(config.seed, config.seedSize, config.evalSize);
  const seedSet = subset(test, split.seedSet);
  const evalSet = subset(test, split.evalSet);
  const cleanVictim = await oracle.label(evalSet.images, evalSet.count, 'measurement');
  const resumed = await latestCheckpoint(fileRunStore(dir));
  const phases = { training: 0, augmentation: 0, labelling: 0 };
  const t0 = performance.now();
  let first: { model: tf.LayersModel; images: Float32Array; labels: Int32Array };
  if (resumed && resumed.record.round === config.rounds) {
    first = { model: resumed.model, images: resumed.images, labels: resumed.labels };
  } else {
    const start = resumed
      ? { round: resumed.record.round, images: resumed.images, labels: resumed.labels, model: resumed.model }
      : { round: 0, images: seedSet.images, labels: await oracle.label(seedSet.images, seedSet.count, 'attack') };
    first = await trainSubstitute({
      config,
      shape: MNIST_MODEL,
      queryAttack: (images, count) => oracle.label(images, count, 'attack'),
      attackQueries: () => paidCounts(oracle).attack,
      evaluation: { images: evalSet.images, truth: evalSet.labels, victim: cleanVictim },
      start,
      checkpoint: (c) => saveCheckpoint(fileRunStore(dir), c, String([config.substitute].flat()[0]), 'mnist'),
      onRound: (r) => log(`  round ${r.round}: ${r.substituteSize} points, agreement ${(100 * r.agreement).toFixed(1)}%, ${r.trainSeconds.toFixed(1)} s`),
      phases,
    });
  }
  const records = roundRecords(fileRunStore(dir));
  // Rounds taken from a longer run end with the points its next round paid for: keep those trained on.
  const labelled = records.at(-1)?.substituteSize ?? first.labels.length;
  const images = first.images.subarray(0, labelled * IMAGE_SIZE);
  const labels = first.labels.subarray(0, labelled);
  const members = await trainMembers({
    config,
    store: fileRunStore(dir),
    images,
    labels,
    roundSizes: records.map((r) => r.substituteSize),
    evaluation: { images: evalSet.images, truth: evalSet.labels, victim: cleanVictim },
    log: (s) => log(`  ${s}`),
  });
  const snapshots = await snapshotMembers({ config, store: fileRunStore(dir), evaluation: { images: evalSet.images, truth: evalSet.labels, victim: cleanVictim } });
  const trainSeconds = records.reduce((s, r) => s + r.trainSeconds, 0) + members.records.reduce((s, r) => s + r.trainSeconds, 0);
  log(`  trained in ${((performance.now() - t0) / 1000).toFixed(1)} s now (${trainSeconds.toFixed(1)} s of training recorded)`);
  return {
    config,
    models: [first.model, ...members.models, ...snapshots.models],
    // Every labelled point was one attack query (the seed set and each augmentation).
    attackQueries: labelled,
    memberAgreement: [records.at(-1)?.agreement ?? null, ...[...members.records, ...snapshots.records].map((r) => r.agreement)],
    trainSeconds,
    evalSet,
    cleanVictim,
  };
}

/** One way of crafting on the trained substitutes. */
export interface AttackSetting {
  name: string;
  attack: AttackName;
  steps?: number;
  loss?: CraftingLoss;
  diversity?: number;
  diversitySamples?: number;
  diversityScale?: number;
  tiKernel?: number;
  combine?: EnsembleCombine;
  /** Use only the first k members (default all). */
  members?: number;
  /** Use only these members, numbered from 1 (the rounds' substitute); overrides `members`. */
  pick?: number[];
  /** Cross-entropy on logits / T at crafting time (default 1): large T weighs the other classes evenly. */
  temperature?: number;
  /** Each iterative step as a fraction of ε (default: the attack's own). */
  relativeStep?: number;
  randomStart?: boolean;
}

export interface LabRow {
  train: string;
  attack: string;
  members: number;
  attackQueries: number;
  agreement: Rate;
  epsilon: number;
  misclassificationRate: Rate;
  transferRate: Rate;
  meanL2: number | null;
  craftSeconds: number;
  trainSeconds: number;
}

/** The members an attack setting crafts on: `pick` (numbered from 1), else the first `members`, else all. */
export function chooseMembers<M>(models: readonly M[], a: Pick<AttackSetting, 'name' | 'members' | 'pick'>, train: string): M[] {
  if (!a.pick) return models.slice(0, a.members ?? models.length);
  const bad = a.pick.filter((m) => !Number.isInteger(m) || m < 1 || m > models.length);
  if (bad.length || a.pick.length === 0) throw new TransferlabError('invalid_arguments', `${a.name}: ${train} has ${models.length} member(s), cannot pick [${a.pick.join(', ')}]`);
  return a.pick.map((m) => models[m - 1]);
}

/** Untargeted transfer of one attack setting at each ε, scored by the victim through the oracle. */
export async function attackTrained(train: string, t: TrainedSubstitutes, a: AttackSetting, epsilons: number[], oracle: CountingOracle): Promise<LabRow[]> {
  const chosen = chooseMembers(t.models, a, train);
  const k = chosen.length;
  const model = ensembleOf(chosen.map(fromLayers), a.combine ?? 'logits');
  const craftLabels = labelImages(model, t.evalSet.images, t.evalSet.count);
  const outcome = await sweep(
    model,
    { images: t.evalSet.images, truth: t.evalSet.labels, craftLabels, targets: chooseTargets(craftLabels, 'random', t.config.seed), cleanVictim: t.cleanVictim },
    { attack: a.attack, epsilons, steps: a.steps ?? 10, seed: t.config.seed, gradient: { loss: a.loss, diversity: a.diversity, diversitySamples: a.diversitySamples, diversityScale: a.diversityScale, tiKernel: a.tiKernel, temperature: a.temperature }, relativeStep: a.relativeStep, randomStart: a.randomStart },
    (images, count) => oracle.label(images, count, 'measurement'),
    ['untargeted'],
  );
  return outcome.points.map((p) => ({
    train,
    attack: a.name,
    members: k,
    attackQueries: t.attackQueries,
    agreement: agreement(craftLabels, t.cleanVictim),
    epsilon: p.epsilon,
    misclassificationRate: p.misclassificationRate,
    transferRate: p.transferRate,
    meanL2: p.meanL2 ?? null,
    craftSeconds: outcome.craftSeconds / epsilons.length,
    trainSeconds: t.trainSeconds,
  }));
}

export const labDir = (out: string, train: string) => join(out, 'substitutes', train);
export const trainedExists = (out: string, train: string) => existsSync(join(labDir(out, train), 'checkpoints'));

const f3 = (v: number | null) => (v === null ? '–' : v.toFixed(3));

export function labTable(rows: LabRow[]): string {
  const head = '| substitutes | attack | members | attack queries | agreement | ε | misclassification | transfer | mean L2 | craft s | training s |';
  const lines = rows.map(
    (r) =>
      `| ${r.train} | ${r.attack} | ${r.members} | ${r.attackQueries} | ${f3(r.agreement)} | ${r.epsilon} | ${f3(r.misclassificationRate)} | ${f3(r.transferRate)} | ${f3(r.meanL2)} | ${r.craftSeconds.toFixed(1)} | ${r.trainSeconds.toFixed(1)} |`,
  );
  return [head, head.replace(/[^|]+/g, ' --- '), ...lines].join('\n') + '\n';
}
