import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runCampaign } from '../../adversary/campaign/campaign.js';
import { resolveConfig, type CampaignInput } from '../../adversary/campaign/config.js';
import { createHttpOracle } from '../../adversary/oracle/client.js';
import { writeReport } from '../../adversary/report/report.js';
import { pgdWithRestarts } from '../../shared/attacks/restarts.js';
import { fgsm } from '../../shared/attacks/index.js';
import { accuracy, transferRate } from '../../shared/metrics.js';
import { adversarySplit, DEFAULT_DATASET, imagesTensor, loadDataset, quantise, subset, type ImageShape } from '../../shared/datasets/index.js';
import { TransferlabError } from '../../shared/errors.js';
import { loadModel } from '../../shared/model/model-io.js';
import { fromLayers, labelImages, type Model } from '../../shared/model/model.js';
import { spawnVictim } from '../../victim/spawn.js';
import { maskingCheck } from './masking.js';
import { ALWAYS_FULL, runEnsembleAttack, standing, worstCase, type AttackOutcome } from './evaluate-ensemble.js';
import { ATTACK_RUNS, EVALUATION_DEFAULTS, WHITEBOX_ATTACKS, type AttackRun, type CampaignPoint, type EvaluationOptions, type ModelEvaluation, type WhiteboxAttack, type WhiteboxPoint } from './evaluation-types.js';

export { EVALUATION_DEFAULTS, WHITEBOX_ATTACKS };
export type { CampaignPoint, EvaluationOptions, ModelEvaluation, WhiteboxAttack, WhiteboxPoint };

/**
 * What a defence buys and costs, measured the same way for every victim model (undefended and
 * defended side by side, `npm run victim:evaluate`), with attacks strong enough that a masked
 * gradient cannot pass for robustness:
 * - clean accuracy on all 10,000 test images;
 * - white-box accuracy per ε on `count` test images (the campaign's evaluation set: the same seeded
 *   split, so black-box and white-box figures are over the same images), the attacker holding the
 *   weights and the true labels: FGSM; PGD on cross-entropy with `restarts` random starts, worst case
 *   per image; PGD on the CW margin loss; and the worst case per image over all of them. Every crafted
 *   image is quantised to 8 bits, as any client must send it, before it is judged;
 * - the masking check (masking.ts) on those figures;
 * - training time and defence settings from metadata.json;
 * - optionally the black-box transfer of a fresh default campaign against the model served as a real
 *   victim process (boundary measures off, the same ε list).
 */
/** Labels of 8-bit-quantised adversarial images. */
function labelsOf(model: Model, adv: tf.Tensor4D, count: number): Int32Array {
  const pixels = quantise(adv.dataSync() as Float32Array);
  return labelImages(model, pixels, count);
}

/** Per-image predictions under each chosen attack at one ε, in run order (evaluate-ensemble.ts: the new ones). */
export async function whiteboxPredictions(model: Model, images: Float32Array, shape: ImageShape, truth: Int32Array, clean: Int32Array, epsilon: number, opts: EvaluationOptions): Promise<[AttackRun, AttackOutcome][]> {
  const n = truth.length;
  const timed = (f: () => Int32Array): AttackOutcome => {
    const t = performance.now();
    const pred = f();
    return { pred, ranOn: n, seconds: (performance.now() - t) / 1000 };
  };
  const x = imagesTensor(images, n, shape);
  const runs: [AttackRun, AttackOutcome][] = [];
  try {
    const restartsOf = (restarts: number, loss: 'ce' | 'margin') => () => {
      const onRun = opts.onRestart && ((run: number, standing: number) => opts.onRestart!({ epsilon, loss, run, runs: restarts, standing, total: n }));
      const r = pgdWithRestarts(model, x, truth, { epsilon, steps: opts.pgdSteps, stepSize: opts.pgdStepSize, restarts, loss, seed: opts.seed, finish: quantise, onRun });
      r.raw.dispose();
      // The images were quantised before they were judged; label them once more as the verdict.
      const pred = labelImages(model, r.clipped.dataSync() as Float32Array, n);
      r.clipped.dispose();
      return pred;
    };
    const everyImage = Array.from({ length: n }, (_, i) => i);
    const d = EVALUATION_DEFAULTS;
    const settings = {
      epsilon, seed: opts.seed, apgdSteps: opts.apgdSteps ?? d.apgdSteps, apgdTargets: opts.apgdTargets ?? d.apgdTargets,
      squareQueries: opts.squareQueries ?? d.squareQueries, raysQueries: opts.raysQueries ?? d.raysQueries, log: opts.log,
    };
    const chosen = opts.attacks ?? ['fgsm', 'pgd', 'pgd-margin'];
    for (const attack of ATTACK_RUNS.filter((a) => chosen.includes(a))) {
      if (attack === 'fgsm') {
        runs.push([attack, timed(() => {
          const { raw, clipped } = fgsm(model, x, truth, { epsilon });
          raw.dispose();
          const pred = labelsOf(model, clipped, n);
          clipped.dispose();
          return pred;
        })]);
      } else if (attack === 'pgd') runs.push([attack, timed(restartsOf(opts.restarts, 'ce'))]);
      else if (attack === 'pgd-margin') runs.push([attack, timed(restartsOf(opts.marginRestarts, 'margin'))]);
      else {
        const open = (opts.cascade ?? true) && !ALWAYS_FULL.includes(attack) ? standing(truth, clean, runs.map(([, o]) => o)) : everyImage;
        runs.push([attack, await runEnsembleAttack(attack, model, images, shape, truth, open, settings)]);
      }
      // A long evaluation says where it is: what is still standing after each attack, and when.
      const [, last] = runs[runs.length - 1];
      opts.log?.(`${new Date().toISOString().slice(11, 19)} ${attack} ε ${epsilon} done in ${last.seconds.toFixed(0)} s: ${standing(truth, clean, runs.map(([, o]) => o)).length} of ${n} images still standing`);
    }
    return runs;
  } finally {
    x.dispose();
  }
}

export async function evaluateModel(dir: string, opts: EvaluationOptions, onPoint?: (p: WhiteboxPoint) => void): Promise<ModelEvaluation> {
  const { model, metadata } = await loadModel(dir);
  try {
    const net = fromLayers(model);
    // The model's own dataset (metadata.json) unless one is chosen, as the white-box baseline does.
    const dataset = opts.dataset ?? (typeof metadata.dataset === 'string' ? metadata.dataset : DEFAULT_DATASET);
    const test = loadDataset(dataset).test;
    const wants = model.inputs[0].shape.slice(1).join('×');
    if (wants !== test.shape.join('×')) {
      throw new TransferlabError('dataset_mismatch', `${dir} takes ${wants} images but dataset ${dataset} has ${test.shape.join('×')}; pass the model's dataset with --dataset`);
    }
    const cleanAccuracy = accuracy(labelImages(net, test.images, test.count), test.labels);
    // 'split': the campaign's seeded evaluation set (black-box and white-box figures on the same images); 'first': test images 0 … count − 1.
    const sample = subset(test, opts.sample === 'first' ? Int32Array.from({ length: Math.min(opts.count, test.count) }, (_, i) => i) : adversarySplit(opts.seed, 150, opts.count, test.count).evalSet);
    const cleanPred = labelImages(net, sample.images, sample.count);
    const started = performance.now();
    const whitebox: WhiteboxPoint[] = [];
    const point = (attack: WhiteboxAttack, epsilon: number, pred: Int32Array, seconds: number, shares?: Record<string, number>) => {
      const p: WhiteboxPoint = {
        attack, epsilon, accuracy: accuracy(pred, sample.labels), successRate: transferRate(pred, cleanPred, sample.labels), seconds: Number(seconds.toFixed(1)),
        ...(attack === 'worst' ? {} : { ranOn: sample.count, fooled: pred.reduce((c, v, i) => c + (v !== sample.labels[i] ? 1 : 0), 0) }),
        ...(shares ? { shares } : {}),
      };
      whitebox.push(p);
      onPoint?.(p);
    };
    for (const epsilon of opts.epsilons) {
      const runs = await whiteboxPredictions(net, sample.images, sample.shape, sample.labels, cleanPred, epsilon, opts);
      for (const [attack, r] of runs) {
        if (r.ranOn === sample.count) point(attack, epsilon, r.pred, r.seconds);
        else {
          // A cascade's attack saw only the images still standing: no accuracy of its own, only what it added.
          const fooled = r.pred.reduce((c, p, i) => c + (p !== -1 && p !== sample.labels[i] ? 1 : 0), 0);
          const p: WhiteboxPoint = { attack, epsilon, accuracy: null, successRate: null, seconds: Number(r.seconds.toFixed(1)), ranOn: r.ranOn, fooled };
          whitebox.push(p);
          onPoint?.(p);
        }
      }
      // Worst case per image: wrong under any attack counts as wrong; each attack's share is what it broke first.
      const worst = worstCase(sample.labels, cleanPred, runs);
      point('worst', epsilon, worst.pred, runs.reduce((s, [, r]) => s + r.seconds, 0), worst.shares);
    }
    const evaluation: Omit<ModelEvaluation, 'masking'> = {
      model: dir,
      dataset,
      undefended: 'defence' in metadata && metadata.defence === null,
      arch: metadata.arch,
      defence: metadata.defence ?? null,
      // A fine-tuned model's training time includes the model it started from.
      trainSeconds: typeof metadata.totalDurationSeconds === 'number' ? metadata.totalDurationSeconds : typeof metadata.durationSeconds === 'number' ? metadata.durationSeconds : null,
      cleanAccuracy,
      cleanAccuracyOnSample: accuracy(cleanPred, sample.labels),
      whitebox,
      whiteboxSeconds: (performance.now() - started) / 1000,
      campaign: null,
      guardReadings: ((metadata.guard as { readings?: ModelEvaluation['guardReadings'] } | null | undefined)?.readings ?? null),
    };
    return { ...evaluation, masking: maskingCheck(evaluation) };
  } finally {
    model.dispose();
  }
}

/**
 * A fresh default campaign (plus `overrides`) against `dir` served as its own victim process on
 * loopback, with its own audit log and ledger in the run folder. Boundary measures are off.
 */
export async function campaignAgainst(
  dir: string,
  runDir: string,
  opts: {
    epsilons: number[];
    seed: number;
    dataset?: string;
    overrides?: CampaignInput;
    log?: (line: string) => void;
    /** The query budget of the served victim (all its callers together; default unlimited), as an attacker with a budgeted key. */
    victimBudget?: number;
  },
): Promise<NonNullable<ModelEvaluation['campaign']>> {
  const victim = await spawnVictim({
    args: ['--model', dir, '--port', '0', '--no-train', '--rate-limit', '0', '--log-level', 'warn',
      '--audit-log', join(runDir, 'victim', 'audit.jsonl'), '--ledger', join(runDir, 'victim', 'ledger.jsonl'),
      ...(opts.victimBudget === undefined ? [] : ['--budget', String(opts.victimBudget)])],
    timeoutMs: 120_000,
  });
  try {
    const config = resolveConfig({ seed: opts.seed, epsilons: opts.epsilons, ...(opts.dataset ? { dataset: opts.dataset } : {}), ...opts.overrides, victim: victim.url, boundary: { enabled: false } });
    const oracle = await createHttpOracle({ url: victim.url, cacheDir: runDir });
    try {
      let results;
      try {
        // The same run folder again resumes the campaign: its checkpoints and paid answers are reused.
        results = await runCampaign(config, runDir, oracle, { log: opts.log ?? (() => {}) });
      } catch (e) {
        if (!(e instanceof TransferlabError)) throw e;
        throw new TransferlabError(
          e.code,
          `the campaign against ${dir} stopped: ${e.message}\nIts run folder ${runDir} keeps every answer paid for; ` +
            'run the same evaluation again with the same --out (and a larger --campaign-budget) to resume it',
          e.status,
        );
      }
      // The campaign's own report (curves, grids, rounds) beside its results, linked from evaluation.html.
      await writeReport(runDir, results);
      return {
        runDir,
        attackQueries: results.queries.attack,
        agreement: results.agreement,
        points: results.epsilons
          .filter((p) => p.mode === 'untargeted')
          .map((p) => ({ epsilon: p.epsilon, misclassificationRate: p.misclassificationRate, transferRate: p.transferRate })),
        durationSeconds: results.durationSeconds,
        partial: results.partial ?? [],
      };
    } finally {
      await oracle.close();
    }
  } finally {
    await victim.stop();
  }
}
