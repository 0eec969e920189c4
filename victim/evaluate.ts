import { join } from 'node:path';
import { runCampaign } from '../adversary/campaign.js';
import { resolveConfig, type CampaignInput } from '../adversary/config.js';
import { createHttpOracle } from '../adversary/oracle-client.js';
import { runAttack, type AttackName } from '../shared/attacks.js';
import { accuracy, type Rate } from '../shared/metrics.js';
import { adversarySplit, imagesTensor, loadMnist, quantise, subset } from '../shared/mnist.js';
import { loadModel } from '../shared/model-io.js';
import { fromLayers, labelImages, type Model } from '../shared/model.js';
import { spawnVictim } from './spawn.js';

/**
 * What a defence buys and costs, measured the same way for every victim model (undefended and
 * defended side by side, `npm run victim:evaluate`):
 * - clean accuracy on all 10,000 test images;
 * - white-box FGSM and PGD accuracy per ε: the attacker holds the weights and the true labels and
 *   crafts on the model itself, on `count` test images (the campaign's evaluation set: the same
 *   seeded split, so black-box and white-box figures are over the same images); the crafted images are
 *   quantised to 8 bits, as any client must send them;
 * - training time and defence settings from metadata.json;
 * - optionally the black-box transfer rate of a fresh default campaign against the model served as a
 *   real victim process (boundary measures off, the same ε list).
 */
export const WHITEBOX_ATTACKS: readonly AttackName[] = ['fgsm', 'pgd'];

export interface EvaluationOptions {
  count: number;
  epsilons: number[];
  /** PGD iterations (step 2.5·ε/steps, random start). */
  pgdSteps: number;
  seed: number;
}

export interface WhiteboxPoint {
  attack: AttackName;
  epsilon: number;
  accuracy: Rate;
}

export interface CampaignPoint {
  epsilon: number;
  misclassificationRate: Rate;
  transferRate: Rate;
}

export interface ModelEvaluation {
  model: string;
  arch: string;
  defence: unknown;
  trainSeconds: number | null;
  cleanAccuracy: Rate;
  /** Clean accuracy on the `count` white-box images (the baseline the attacked figures fall from). */
  cleanAccuracyOnSample: Rate;
  whitebox: WhiteboxPoint[];
  whiteboxSeconds: number;
  campaign: { runDir: string; attackQueries: number; agreement: Rate; points: CampaignPoint[]; durationSeconds: number } | null;
}

/** Accuracy of `model` on adversarial examples crafted white-box against itself. */
export function whiteboxAccuracy(model: Model, images: Float32Array, truth: Int32Array, attack: AttackName, epsilon: number, opts: { steps: number; seed: number }): Rate {
  const x = imagesTensor(images, truth.length);
  let adv: Float32Array;
  try {
    const { raw, clipped } = runAttack(attack, model, x, truth, { epsilon, steps: opts.steps, seed: opts.seed });
    raw.dispose();
    adv = quantise(clipped.dataSync() as Float32Array);
    clipped.dispose();
  } finally {
    x.dispose();
  }
  return accuracy(labelImages(model, adv, truth.length), truth);
}

export async function evaluateModel(dir: string, opts: EvaluationOptions, onPoint?: (p: WhiteboxPoint) => void): Promise<ModelEvaluation> {
  const { model, metadata } = await loadModel(dir);
  try {
    const net = fromLayers(model);
    const test = loadMnist('test');
    const cleanAccuracy = accuracy(labelImages(net, test.images, test.count), test.labels);
    const sample = subset(test, adversarySplit(opts.seed, 150, opts.count).evalSet);
    const started = performance.now();
    const whitebox: WhiteboxPoint[] = [];
    for (const attack of WHITEBOX_ATTACKS) {
      for (const epsilon of opts.epsilons) {
        const point = { attack, epsilon, accuracy: whiteboxAccuracy(net, sample.images, sample.labels, attack, epsilon, { steps: opts.pgdSteps, seed: opts.seed }) };
        whitebox.push(point);
        onPoint?.(point);
      }
    }
    return {
      model: dir,
      arch: metadata.arch,
      defence: metadata.defence ?? null,
      // A fine-tuned model's training time includes the model it started from.
      trainSeconds: typeof metadata.totalDurationSeconds === 'number' ? metadata.totalDurationSeconds : typeof metadata.durationSeconds === 'number' ? metadata.durationSeconds : null,
      cleanAccuracy,
      cleanAccuracyOnSample: accuracy(labelImages(net, sample.images, sample.count), sample.labels),
      whitebox,
      whiteboxSeconds: (performance.now() - started) / 1000,
      campaign: null,
    };
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
  opts: { epsilons: number[]; seed: number; overrides?: CampaignInput; log?: (line: string) => void },
): Promise<NonNullable<ModelEvaluation['campaign']>> {
  const victim = await spawnVictim({
    args: ['--model', dir, '--port', '0', '--no-train', '--rate-limit', '0', '--log-level', 'warn',
      '--audit-log', join(runDir, 'victim', 'audit.jsonl'), '--ledger', join(runDir, 'victim', 'ledger.jsonl')],
    timeoutMs: 120_000,
  });
  try {
    const config = resolveConfig({ seed: opts.seed, epsilons: opts.epsilons, ...opts.overrides, victim: victim.url, boundary: { enabled: false } });
    const oracle = await createHttpOracle({ url: victim.url, cacheDir: runDir });
    try {
      const results = await runCampaign(config, runDir, oracle, { log: opts.log ?? (() => {}) });
      return {
        runDir,
        attackQueries: results.queries.attack,
        agreement: results.agreement,
        points: results.epsilons
          .filter((p) => p.mode === 'untargeted')
          .map((p) => ({ epsilon: p.epsilon, misclassificationRate: p.misclassificationRate, transferRate: p.transferRate })),
        durationSeconds: results.durationSeconds,
      };
    } finally {
      await oracle.close();
    }
  } finally {
    await victim.stop();
  }
}

const fmt = (v: Rate | undefined) => (v === null || v === undefined ? '–' : v.toFixed(4));

/** One row per measure, one column per model. */
export function evaluationRows(evals: ModelEvaluation[], epsilons: number[]): string[][] {
  const rows: string[][] = [['measure', ...evals.map((e) => e.model)]];
  rows.push(['architecture', ...evals.map((e) => e.arch)]);
  rows.push(['defence', ...evals.map((e) => describeDefence(e.defence))]);
  rows.push(['training time (s)', ...evals.map((e) => (e.trainSeconds === null ? '–' : e.trainSeconds.toFixed(1)))]);
  rows.push(['clean accuracy (10,000 test)', ...evals.map((e) => fmt(e.cleanAccuracy))]);
  rows.push(['clean accuracy (attacked sample)', ...evals.map((e) => fmt(e.cleanAccuracyOnSample))]);
  for (const attack of WHITEBOX_ATTACKS) {
    for (const eps of epsilons) {
      rows.push([`white-box ${attack} accuracy ε ${eps}`, ...evals.map((e) => fmt(e.whitebox.find((p) => p.attack === attack && p.epsilon === eps)?.accuracy))]);
    }
  }
  if (evals.some((e) => e.campaign)) {
    for (const eps of epsilons) {
      rows.push([`black-box transfer rate ε ${eps}`, ...evals.map((e) => fmt(e.campaign?.points.find((p) => p.epsilon === eps)?.transferRate))]);
    }
    rows.push(['campaign attack queries', ...evals.map((e) => (e.campaign ? String(e.campaign.attackQueries) : '–'))]);
    rows.push(['substitute agreement', ...evals.map((e) => fmt(e.campaign?.agreement))]);
  }
  return rows;
}

export function describeDefence(defence: unknown): string {
  if (!defence || typeof defence !== 'object') return 'none';
  const d = defence as Record<string, unknown>;
  return (
    [d.attack, d.epsilon !== undefined ? `ε ${String(d.epsilon)}` : '', d.mix !== undefined ? `mix ${String(d.mix)}` : '', d.keepClean ? '+ clean' : '']
      .filter(Boolean)
      .join(' ') || String(d.kind ?? 'yes')
  );
}

export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

export function toCsv(rows: string[][]): string {
  const cell = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return rows.map((r) => r.map(cell).join(',')).join('\n') + '\n';
}

