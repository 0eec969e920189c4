import { chooseTargets } from '../../shared/attacks/index.js';
import { accuracy } from '../../shared/metrics.js';
import { summarise } from '../../shared/datasets/types.js';
import { adversarySplit, subset } from '../../shared/datasets/images.js';
import { attackerDataset } from '../run/dataset-choice.js';
import { loadWhiteboxModel } from '../../shared/model/whitebox-model.js';
import { labelImages } from '../../shared/model/model.js';
import { provenance } from '../../shared/versions.js';
import type { CampaignConfig } from './config.js';
import { writeResults, type CampaignResults, type Unversioned } from './results.js';
import { putJson, runStore, type RunStore } from '../run/store.js';
import { perClassTables, sweep, sweepSettings } from './transfer.js';

/**
 * The white-box baseline (the seed paper's setting, ATLAS AML.T0043.000): the attacker holds
 * the victim's weights and crafts on the victim itself. Explicitly a separate mode: it reads
 * the victim's files, which a black-box campaign never does. Same split, sweep and measures.
 */
export async function runWhitebox(config: CampaignConfig, modelDir: string, run: RunStore | string): Promise<CampaignResults> {
  const store = runStore(run);
  const started = performance.now();
  // The model and its images first: a model that cannot be attacked white-box, or a dataset that does
  // not fit it, leaves no run folder behind.
  const loaded = await loadWhiteboxModel(modelDir);
  const victim = loaded.logits;
  const classes = loaded.classes;
  // The same images a campaign on this victim would draw: the dataset the model says it was trained on, unless one is chosen.
  const trainedOn = typeof loaded.metadata?.dataset === 'string' ? loaded.metadata.dataset : null;
  let dataset;
  try {
    dataset = attackerDataset(config.dataset, { dataset: trainedOn, inputShape: loaded.inputShape, classes, inputRange: [0, 1], maxBatch: 1, output: 'label' });
  } catch (e) {
    loaded.dispose();
    throw e;
  }
  // As a campaign does: the resolved config goes with the run, the API key never does.
  const { apiKey: _key, ...saved } = config;
  putJson(store, 'config.json', { ...saved, mode: 'whitebox', model: modelDir });
  if (loaded.softmaxStripped) console.log(`${modelDir}: softmax last layer stripped; gradients are taken of the logits below it`);
  const test = dataset.test;
  const evalSet = subset(test, adversarySplit(config.seed, config.seedSize, config.evalSize, test.count).evalSet);
  const cleanVictim = labelImages(victim, evalSet.images, evalSet.count);
  // With the weights in hand the attacker also has the true labels, as in the seed paper.
  const targets = chooseTargets(evalSet.labels, config.targetClass, config.seed, classes);
  const outcome = await sweep(
    victim,
    { images: evalSet.images, truth: evalSet.labels, craftLabels: evalSet.labels, targets, cleanVictim },
    sweepSettings(config),
    async (images, count) => labelImages(victim, images, count),
  );
  const results: Unversioned<CampaignResults> = {
    kind: 'whitebox',
    name: store.name,
    createdAt: new Date().toISOString(),
    ...provenance(config.seed),
    victim: { model: modelDir, arch: typeof loaded.metadata?.arch === 'string' ? loaded.metadata.arch : `user TF.js model (weights sha256 ${loaded.weightsSha256.slice(0, 12)}…)` },
    dataset: summarise(dataset),
    config: { ...config, mode: 'whitebox', model: modelDir },
    queries: { attack: 0, measurement: 0, cached: 0 },
    victimCleanAccuracy: accuracy(cleanVictim, evalSet.labels),
    substituteCleanAccuracy: null,
    agreement: null,
    rounds: [],
    epsilons: outcome.points,
    perClass: perClassTables(config.epsilons, evalSet.labels, cleanVictim, outcome, classes),
    boundary: null,
    durationSeconds: (performance.now() - started) / 1000,
    phases: { crafting: outcome.craftSeconds, measurement: outcome.measureSeconds },
  };
  const written = writeResults(store, results, { evalSet, classes, outcome, targets, cleanVictim });
  loaded.dispose();
  return written;
}
