import * as tf from '@tensorflow/tfjs';
import { fgsm, pgd } from '../../shared/attacks/index.js';
import { TransferlabError } from '../../shared/errors.js';
import { fromLayers } from '../../shared/model/model.js';
import type { TrainOptions } from '../../shared/model/training.js';

/**
 * Adversarial training (AML.M0003 Model Hardening): part or all of every batch is replaced by
 * adversarial versions crafted white-box against the model as it is at that step, so the examples keep
 * up with what the model has learnt. Recipes:
 * - fgsm:    one step of ε from the image (Goodfellow et al.). On MNIST it masks gradients: FGSM stops
 *            working while PGD still takes accuracy to 0 — kept to show what the masking check catches.
 * - fgsm-rs: one step of α (default 1.25 ε) from a uniform random start in the ε-ball, projected back
 *            (Wong, Rice & Kolter 2020, "Fast is better than free"): the random start is what keeps the
 *            single step from learning to mask.
 * - pgd:     K projected steps of α (default 2.5 ε / K) from a random start (Madry et al. 2018). K
 *            defaults to 2: on MNIST at ε 0.3 two steps already hold off PGD-50 with restarts, at
 *            3 gradients a training step instead of FGSM-RS's 2 (docs/results/defences.md), while a single
 *            step from a random start drifts into masking the longer it trains.
 */
export const RECIPES = ['none', 'fgsm', 'fgsm-rs', 'pgd'] as const;
export type Recipe = (typeof RECIPES)[number];

/** PGD steps of the `pgd` recipe unless --pgd-steps says otherwise. */
export const PGD_TRAINING_STEPS = 2;

export const DEFENCE_OPTIONS = {
  adversarial: { type: 'string', choices: RECIPES, default: 'none', describe: 'adversarial training recipe (fgsm-rs and pgd also change the defaults of --arch, --epochs, --batch-size, --learning-rate and --schedule, see above)' },
  eps: { type: 'number', default: 0.3, describe: 'adversarial training ε (L∞)' },
  alpha: { type: 'number', describe: 'attack step size α (default: ε for fgsm, 1.25 ε for fgsm-rs, 2.5 ε / K for pgd)' },
  mix: { type: 'number', describe: 'share of each batch replaced by adversarial examples, (0..1] (default 0.5 for fgsm, 1 for fgsm-rs and pgd)' },
  'pgd-steps': { type: 'number', default: PGD_TRAINING_STEPS, describe: 'PGD steps K for --adversarial pgd (Madry et al. used 40; 2 is the measured fast recipe)' },
  'keep-clean': {
    type: 'boolean',
    default: false,
    describe: 'add the adversarial copies beside their clean originals instead of replacing them (with --mix 1: Goodfellow et al.\'s ½ clean + ½ adversarial loss)',
  },
} as const;

export interface DefenceArgs {
  adversarial?: string;
  eps?: number;
  alpha?: number;
  mix?: number;
  'pgd-steps'?: number;
  'keep-clean'?: boolean;
  seed?: number;
}

export interface DefenceSettings {
  recipe: Exclude<Recipe, 'none'>;
  epsilon: number;
  /** Default: see DEFENCE_OPTIONS.alpha. */
  alpha?: number;
  mix?: number;
  steps?: number;
  keepClean?: boolean;
  /** Seeds the random starts (each step draws its own from seed and the step number). */
  seed?: number;
}

export interface Defence {
  metadata: Record<string, unknown>;
  transformBatch: NonNullable<TrainOptions['transformBatch']>;
  /** The step size in use now (the overfitting guard may have lowered it). */
  stepSize(): number;
  /** Multiply the step size by `factor` (the guard's answer to a collapse); returns the new size. */
  lowerStep(factor: number): number;
  /** Scale ε and α by `share` ∈ (0, 1] for the next steps (the ε warm-up). */
  warmUp(share: number): void;
}

export function defenceFromArgs(args: DefenceArgs): Defence | undefined {
  const recipe = args.adversarial ?? 'none';
  if (recipe === 'none') return undefined;
  const problems: string[] = [];
  if (!(RECIPES as readonly string[]).includes(recipe)) problems.push(`--adversarial must be one of ${RECIPES.join(', ')} (got ${recipe})`);
  const settings: DefenceSettings = {
    recipe: recipe as DefenceSettings['recipe'],
    epsilon: args.eps ?? 0.3,
    alpha: args.alpha,
    mix: args.mix,
    steps: args['pgd-steps'] ?? PGD_TRAINING_STEPS,
    keepClean: args['keep-clean'] ?? false,
    seed: args.seed,
  };
  problems.push(...settingsProblems(settings));
  if (problems.length) throw new TransferlabError('invalid_config', problems.join('; '));
  return adversarialTraining(settings);
}

function settingsProblems(s: DefenceSettings): string[] {
  const problems: string[] = [];
  if (!(s.epsilon > 0 && s.epsilon <= 1)) problems.push(`--eps must be in (0, 1] (got ${s.epsilon})`);
  if (s.alpha !== undefined && !(s.alpha > 0 && s.alpha <= 2)) problems.push(`--alpha must be in (0, 2] (got ${s.alpha})`);
  if (s.mix !== undefined && !(s.mix > 0 && s.mix <= 1)) problems.push(`--mix must be in (0, 1] (got ${s.mix})`);
  if (s.steps !== undefined && (!Number.isInteger(s.steps) || s.steps < 1)) problems.push(`--pgd-steps must be a positive integer (got ${s.steps})`);
  return problems;
}

export function defaultAlpha(recipe: DefenceSettings['recipe'], epsilon: number, steps: number): number {
  if (recipe === 'fgsm') return epsilon;
  if (recipe === 'fgsm-rs') return 1.25 * epsilon;
  return (2.5 * epsilon) / steps;
}

export function adversarialTraining(s: DefenceSettings): Defence {
  const problems = settingsProblems(s);
  if (problems.length) throw new TransferlabError('invalid_config', problems.join('; '));
  const { recipe, epsilon } = s;
  const steps = recipe === 'pgd' ? (s.steps ?? PGD_TRAINING_STEPS) : 1;
  const mix = s.mix ?? (recipe === 'fgsm' ? 0.5 : 1);
  const keepClean = s.keepClean ?? false;
  const seed = s.seed ?? 0;
  let alpha = s.alpha ?? defaultAlpha(recipe, epsilon, steps);
  let share = 1;
  const metadata: Record<string, unknown> = {
    kind: 'adversarial-training',
    attack: recipe,
    epsilon,
    mix,
    ...(recipe === 'pgd' ? { steps } : {}),
    ...(recipe !== 'fgsm' || s.alpha !== undefined ? { alpha } : {}),
    ...(recipe !== 'fgsm' ? { randomStart: 'uniform in the ε-ball' } : {}),
    ...(keepClean ? { keepClean } : {}),
  };
  return {
    metadata,
    stepSize: () => alpha,
    lowerStep: (factor) => (alpha *= factor),
    warmUp: (next) => {
      share = Math.min(1, Math.max(next, 1e-3));
    },
    transformBatch: (x, y, model, step = 0) => {
      const n = x.shape[0];
      const k = Math.max(1, Math.round(n * mix));
      const labels = y.slice(0, k).dataSync() as Int32Array;
      const head = x.slice([0, 0, 0, 0], [k, -1, -1, -1]);
      const net = fromLayers(model);
      // Every step draws a fresh start: one fixed noise pattern would be learnt like any other input.
      const { raw, clipped } =
        recipe === 'fgsm' && s.alpha === undefined
          ? fgsm(net, head, labels, { epsilon: epsilon * share })
          : pgd(net, head, labels, { epsilon: epsilon * share, steps, stepSize: alpha * share, randomStart: recipe !== 'fgsm', seed: seed * 1_000_003 + step });
      raw.dispose();
      // Keeping the clean originals costs a larger batch but spares the clean accuracy.
      if (keepClean) return { x: tf.concat([x, clipped]), labels: tf.concat([y, y.slice(0, k)]) };
      return k === n ? clipped : tf.concat([clipped, x.slice([k, 0, 0, 0], [n - k, -1, -1, -1])]);
    },
  };
}
