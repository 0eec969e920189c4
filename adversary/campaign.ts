import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chooseTargets } from '../shared/attacks.js';
import { accuracy } from '../shared/metrics.js';
import { summarise } from '../shared/datasets/types.js';
import { adversarySplit, subset } from '../shared/datasets/images.js';
import { fromLayers, labelImages } from '../shared/model.js';
import { provenance } from '../shared/versions.js';
import type { TrainOptions } from '../shared/training.js';
import type { CampaignConfig } from './config.js';
import type { CountingOracle } from './oracle-core.js';
import { latestCheckpoint, roundRecords, saveCheckpoint, writeJson, type RoundRecord } from './run-folder.js';
import { trainSubstitute } from './substitute.js';
import { perClassTables, sweep } from './transfer.js';
import { writeResults, type CampaignResults } from './results.js';
import { measureBoundary } from './boundary-run.js';
import { attackerDataset } from './dataset-choice.js';

/**
 * One black-box campaign, as a short sequence of named steps:
 * split → label the seed set → train the substitute (rounds of fit + Jacobian augmentation) →
 * craft on the substitute → query the victim with the crafted images → score → write the run folder.
 */
export interface CampaignHooks {
  log: (line: string) => void;
  onBatchEnd?: TrainOptions['onBatchEnd'];
  onRound?: (r: RoundRecord) => void;
}

export async function runCampaign(
  config: CampaignConfig,
  runDir: string,
  oracle: CountingOracle,
  hooks: CampaignHooks,
): Promise<CampaignResults> {
  const started = performance.now();
  const phases = { labelling: 0, training: 0, augmentation: 0, crafting: 0, measurement: 0, boundary: 0 };
  mkdirSync(runDir, { recursive: true });
  // The resolved config goes with the run (the key is a secret and stays out of it).
  const { apiKey: _secret, ...saved } = config;
  if (!existsSync(join(runDir, 'config.json'))) writeJson(join(runDir, 'config.json'), saved);
  const info = await oracle.info();
  // The substitute is built for what the victim takes and answers; the attacker's images must match it.
  const dataset = attackerDataset(config.dataset, info, hooks.log);
  const shape = { inputShape: dataset.shape, classes: info.classes };
  // Totals over the run folder's whole life, so a resumed run reports what the campaign cost in all.
  const paid = () => {
    const now = oracle.counts();
    const before = oracle.priorCounts();
    return { attack: now.attack + before.attack, measurement: now.measurement + before.measurement, cached: now.cached };
  };

  // Select: the adversary's own data is a small seed set of test images; the evaluation set is disjoint.
  const test = dataset.test;
  const split = adversarySplit(config.seed, config.seedSize, config.evalSize, test.count);
  const seedSet = subset(test, split.seedSet);
  const evalSet = subset(test, split.evalSet);

  // Crafting from the victim's own answers is something the attacker pays for, so ask for them first.
  let t = performance.now();
  const craftFromOracle = config.craftLabel === 'oracle';
  const cleanVictim = await oracle.label(evalSet.images, evalSet.count, craftFromOracle ? 'attack' : 'measurement');
  phases.measurement += (performance.now() - t) / 1000;

  // Query + fit, resuming from the last finished round when there is one.
  const resumed = await latestCheckpoint(runDir);
  let start: { round: number; images: Float32Array; labels: Int32Array; model?: import('@tensorflow/tfjs').LayersModel };
  if (resumed) {
    hooks.log(`resuming after round ${resumed.record.round} (${resumed.labels.length} labelled points on disk)`);
    start = { round: resumed.record.round, images: resumed.images, labels: resumed.labels, model: resumed.model };
  } else {
    t = performance.now();
    const seedLabels = await oracle.label(seedSet.images, seedSet.count, 'attack');
    phases.labelling += (performance.now() - t) / 1000;
    hooks.log(`seed set: ${seedSet.count} images labelled by the victim`);
    start = { round: 0, images: seedSet.images, labels: seedLabels };
  }
  const { model } = await trainSubstitute({
    config,
    shape,
    queryAttack: (images, count) => oracle.label(images, count, 'attack'),
    attackQueries: () => paid().attack,
    evaluation: { images: evalSet.images, truth: evalSet.labels, victim: cleanVictim },
    start,
    checkpoint: (c) => saveCheckpoint(runDir, c, config.substitute, dataset.name),
    onBatchEnd: hooks.onBatchEnd,
    onRound: hooks.onRound,
    phases,
  });
  const substitute = fromLayers(model);

  // Craft on the substitute, then let the victim judge the crafted images.
  const substituteClean = labelImages(substitute, evalSet.images, evalSet.count);
  const craftLabels = craftFromOracle ? cleanVictim : substituteClean;
  const targets = chooseTargets(craftLabels, config.target, config.seed, info.classes);
  const outcome = await sweep(
    substitute,
    { images: evalSet.images, truth: evalSet.labels, craftLabels, targets, cleanVictim },
    { attack: config.attack, epsilons: config.epsilons, steps: config.steps, seed: config.seed },
    (images, count) => oracle.label(images, count, 'measurement'),
  );
  phases.crafting += outcome.craftSeconds;
  phases.measurement += outcome.measureSeconds;

  t = performance.now();
  const boundary = config.boundary.enabled
    ? await measureBoundary({ config, runDir, substitute, evalSet, classNames: dataset.classNames, cleanVictim, substituteClean, oracle, log: hooks.log })
    : null;
  phases.boundary += (performance.now() - t) / 1000;

  const results: CampaignResults = {
    kind: 'campaign',
    name: runDir.split('/').filter(Boolean).at(-1) ?? 'run',
    createdAt: new Date().toISOString(),
    ...provenance(config.seed),
    victim: { url: config.victim, info },
    dataset: summarise(dataset),
    config,
    queries: paid(),
    victimCleanAccuracy: accuracy(cleanVictim, evalSet.labels),
    substituteCleanAccuracy: accuracy(substituteClean, evalSet.labels),
    agreement: roundRecords(runDir).at(-1)?.agreement ?? null,
    rounds: roundRecords(runDir),
    epsilons: outcome.points,
    perClass: perClassTables(config.epsilons, evalSet.labels, cleanVictim, outcome, info.classes),
    boundary,
    durationSeconds: (performance.now() - started) / 1000,
    phases,
  };
  writeResults(runDir, results, { evalSet, classes: info.classes, outcome, targets, cleanVictim });
  model.dispose();
  return results;
}
