import type * as tf from '@tensorflow/tfjs';
import { fgsmAlong, inputGradientSign, projectedImages, runAttack, type AttackName, type GradientOptions } from '../../shared/attacks/index.js';
import { meanPerturbationL2, sweepRow, type SweepRow, confusionMatrix, perClassTransfer, type Rate } from '../../shared/metrics.js';
import { imagesTensor, quantise } from '../../shared/datasets/images.js';
import { labelImages, type Model } from '../../shared/model/model.js';
import type { Labeler } from '../../shared/labeler.js';
import type { CampaignConfig } from './config.js';
import type { CraftSplit } from './craft-split.js';
import { onCut, type PartialMeasure } from '../run/measure-cut.js';
import { askNow, nextTurn } from './overlap.js';

/**
 * The ε sweep: craft adversarial examples on one model (the substitute, or the victim itself in
 * the white-box baseline), ask the victim what it sees, score with the one set of metrics.
 */
export type AttackMode = 'untargeted' | 'targeted';

export interface SweepSettings {
  attack: AttackName;
  epsilons: number[];
  steps: number;
  seed: number;
  /** Loss, DI and TI of the crafting gradient (defaults: cross-entropy, neither). */
  gradient?: Omit<GradientOptions, 'seed'>;
  /** Each iterative step as a fraction of ε (default: the attack's own, e.g. 2.5/steps for pgd). */
  relativeStep?: number;
  /** Uniform random start in the ε-ball (default: the attack's own: on for pgd only). */
  randomStart?: boolean;
  /** A victim that refuses for the key's budget ends the sweep with the points measured so far (else it stops the run). */
  allowPartial?: boolean;
}

export interface SweepPoint extends SweepRow {
  mode: AttackMode;
  /** Share of the crafted examples the crafting model itself gets wrong (or, targeted, puts into the target). */
  craftModelSuccessRate: Rate;
  /** Images the victim was asked to label at this ε (answers already in the run's cache included). */
  measurementQueries: number;
  /** Mean L2 norm of the perturbation actually sent (8-bit), beside the rates. */
  meanL2?: number | null;
}

export interface SweepOutcome {
  points: SweepPoint[];
  /** Victim labels on the adversarial examples, per mode and ε (same order as epsilons). */
  victimLabels: Record<AttackMode, Int32Array[]>;
  /** The crafted images (8-bit quantised, as sent), per mode and ε. */
  adversarial: Record<AttackMode, Float32Array[]>;
  craftSeconds: number;
  measureSeconds: number;
  /** Set when the key's budget cut the sweep (allowPartial): the points after the cut are absent. */
  partial?: PartialMeasure | null;
}

export interface SweepData {
  images: Float32Array;
  truth: Int32Array;
  /** Labels the attack pushes away from (untargeted). */
  craftLabels: Int32Array;
  targets: Int32Array;
  /** The victim's labels of the clean images. */
  cleanVictim: Int32Array;
}

/** The sweep's settings from a campaign's (or the white-box baseline's) config. */
export function sweepSettings(c: Pick<CampaignConfig, 'attack' | 'epsilons' | 'steps' | 'seed' | 'loss' | 'diversity' | 'diversityScale' | 'diversitySamples' | 'tiKernel' | 'craftTemperature'> & { allowPartial?: boolean }): SweepSettings {
  return {
    allowPartial: c.allowPartial,
    attack: c.attack,
    epsilons: c.epsilons,
    steps: c.steps,
    seed: c.seed,
    gradient: { loss: c.loss, diversity: c.diversity, diversityScale: c.diversityScale, diversitySamples: c.diversitySamples, tiKernel: c.tiKernel, temperature: c.craftTemperature },
  };
}

export async function sweep(
  model: Model,
  data: SweepData,
  s: SweepSettings,
  victim: Labeler,
  modes: readonly AttackMode[] = ['untargeted', 'targeted'],
  /** Crafts the iterative attacks on two threads (craft-split.ts); the same images as without it. */
  split?: CraftSplit | null,
): Promise<SweepOutcome> {
  const n = data.truth.length;
  const x = imagesTensor(data.images, n, model.inputShape);
  const points: SweepPoint[] = [];
  const victimLabels: SweepOutcome['victimLabels'] = { untargeted: [], targeted: [] };
  const adversarial: SweepOutcome['adversarial'] = { untargeted: [], targeted: [] };
  let craftSeconds = 0;
  let measureSeconds = 0;
  let partial: PartialMeasure | null = null;
  const jobs = modes.flatMap((mode) => s.epsilons.map((epsilon) => ({ mode, epsilon })));
  const planned = jobs.length * n;
  const gradient = { ...s.gradient, seed: s.seed };
  // FGSM's direction does not depend on ε: one gradient per mode serves the whole sweep.
  const directions = new Map<AttackMode, tf.Tensor4D>();
  const goalOf = (mode: AttackMode) => (mode === 'targeted' ? data.targets : data.craftLabels);
  /** The images sent at one point (8-bit, as a real attacker can only send valid 8-bit images). */
  const craft = async ({ mode, epsilon }: (typeof jobs)[number]): Promise<Float32Array> => {
    const targets = mode === 'targeted' ? data.targets : undefined;
    if (s.attack === 'fgsm' && !directions.has(mode)) directions.set(mode, inputGradientSign(model, x, goalOf(mode), mode === 'targeted', undefined, gradient));
    const direction = directions.get(mode);
    const options = { ...gradient, epsilon, steps: s.steps, targets, stepSize: s.relativeStep === undefined ? undefined : s.relativeStep * epsilon, randomStart: s.randomStart };
    const crafted = direction
      ? projectedImages(fgsmAlong(x, direction, epsilon, model.bounds))
      : split
        ? await split.craft(s.attack, x, goalOf(mode), options)
        : projectedImages(runAttack(s.attack, model, x, goalOf(mode), options));
    return quantise(crafted);
  };
  const since = (t: number) => (performance.now() - t) / 1000;
  let t0 = performance.now();
  let next: Promise<Float32Array> | null = jobs.length ? craft(jobs[0]) : null;
  next?.catch(() => undefined);
  craftSeconds += since(t0);
  try {
    for (const [k, { mode, epsilon }] of jobs.entries()) {
      const targets = mode === 'targeted' ? data.targets : undefined;
      t0 = performance.now();
      const adv = await (next as Promise<Float32Array>);
      craftSeconds += since(t0);
      // Pipelined: the victim labels this point while the next one is crafted (its request goes first).
      const t1 = performance.now();
      const asked = askNow(victim, adv, n);
      await nextTurn();
      const t2 = performance.now();
      const craftPred = labelImages(model, adv, n);
      next = k + 1 < jobs.length ? craft(jobs[k + 1]) : null;
      next?.catch(() => undefined);
      const local = since(t2);
      craftSeconds += local;
      let labels: Int32Array;
      try {
        labels = await asked;
      } catch (e) {
        // A point is measured whole or not at all: the points after the cut are left out, never filled in.
        partial = onCut(e, s.allowPartial ?? false, 'transfer', `transfer sweep (${mode}, ε ${epsilon})`, points.length * n, planned);
        break;
      } finally {
        measureSeconds += since(t1) - local;
      }
      const row = sweepRow(epsilon, labels, data.cleanVictim, data.truth, targets);
      const craftRow = sweepRow(epsilon, craftPred, data.craftLabels, data.truth, targets);
      points.push({
        ...row,
        mode,
        craftModelSuccessRate: mode === 'targeted' ? craftRow.targetedSuccessRate : craftRow.misclassificationRate,
        measurementQueries: n,
        meanL2: meanPerturbationL2(adv, data.images, data.images.length / n),
      });
      victimLabels[mode].push(labels);
      adversarial[mode].push(adv);
    }
  } finally {
    // A point crafted ahead of a cut (or of a failure) still uses x and the directions: let it finish first.
    await next?.catch(() => undefined);
    for (const d of directions.values()) d.dispose();
    x.dispose();
  }
  return { points, victimLabels, adversarial, craftSeconds, measureSeconds, partial };
}

export interface PerClassTable {
  mode: AttackMode;
  epsilon: number;
  /** matrix[t][p]: adversarial images of true class t the victim labels p. */
  matrix: number[][];
  transferRate: Rate[];
}

/** Per-class view of every ε: true class × victim label, and the transfer rate per true class. */
export function perClassTables(epsilons: number[], truth: Int32Array, cleanVictim: Int32Array, outcome: SweepOutcome, classes: number): PerClassTable[] {
  return (['untargeted', 'targeted'] as const).flatMap((mode) =>
    // A sweep cut short (allowPartial) holds labels for its first points only.
    outcome.victimLabels[mode].map((adv, i) => {
      const epsilon = epsilons[i];
      return { mode, epsilon, matrix: confusionMatrix(truth, adv, classes), transferRate: perClassTransfer(adv, cleanVictim, truth, classes) };
    }),
  );
}

