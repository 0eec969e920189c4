import * as tf from '@tensorflow/tfjs';
import { fgsm, pgd } from '../../shared/attacks/index.js';
import { TransferlabError } from '../../shared/errors.js';
import { fromLayers } from '../../shared/model/model.js';
import type { TrainOptions } from '../../shared/model/training.js';
import { tradesAttack, tradesLoss, TRADES_START_NOISE } from './trades.js';

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
 * - trades:  the TRADES loss (Zhang et al. 2019, trades.ts): CE on the clean batch + β · KL(f(x) ‖ f(x'))
 *            with x' from K sign steps maximising that KL from x + 0.001·N(0, 1). It changes the loss, not
 *            the batch, so it comes in through the training loop's batchLoss instead of transformBatch.
 */
export const RECIPES = ['none', 'fgsm', 'fgsm-rs', 'pgd', 'trades'] as const;
export type Recipe = (typeof RECIPES)[number];
/** The recipes that train the robust victim: they bring ROBUST_DEFAULTS (train.ts) and the overfitting guard with them. */
export const ROBUST_RECIPES: readonly Recipe[] = ['fgsm-rs', 'pgd', 'trades'];
const robustList = ROBUST_RECIPES.join(', ');

/** PGD steps of the `pgd` recipe unless --pgd-steps says otherwise. */
export const PGD_TRAINING_STEPS = 2;
/**
 * Inner steps of the `trades` recipe unless --pgd-steps says otherwise. The reference's MNIST script takes
 * 40 steps of 0.01; we keep PGD's 2 steps of 2.5 ε / K: a TRADES step costs about one gradient more than a
 * PGD-2 step (the outer loss runs the model on both x and x'), which keeps 4 epochs of wong-wide near the
 * 15 minutes on 2 cores that robust training may take.
 */
export const TRADES_TRAINING_STEPS = 2;
/**
 * β (1/λ) unless --beta says otherwise: 6, the value of the paper's MNIST and CIFAR-10 experiments. The
 * reference's train_trades_mnist.py defaults to 1.0 and its README advises 1..10, larger being more robust
 * and less accurate; our robust victim lacks robustness, not clean accuracy, so we take the paper's 6.
 */
export const TRADES_BETA = 6;

export const DEFENCE_OPTIONS = {
  adversarial: { type: 'string', choices: RECIPES, default: 'none', describe: `adversarial training recipe (${robustList} also change the defaults of --arch, --epochs, --batch-size, --learning-rate and --schedule, see above)` },
  eps: { type: 'number', default: 0.3, describe: 'adversarial training ε (L∞)' },
  alpha: { type: 'number', describe: 'attack step size α (default: ε for fgsm, 1.25 ε for fgsm-rs, 2.5 ε / K for pgd and trades)' },
  mix: { type: 'number', describe: 'share of each batch replaced by adversarial examples, (0..1] (default 0.5 for fgsm, 1 for fgsm-rs and pgd)' },
  'pgd-steps': { type: 'number', describe: `attack steps K for --adversarial pgd and trades (default ${PGD_TRAINING_STEPS} for pgd — Madry et al. used 40; 2 is the measured fast recipe — and ${TRADES_TRAINING_STEPS} for trades)` },
  beta: { type: 'number', describe: `TRADES weight β of the KL term, ≥ 0 (default ${TRADES_BETA}, the paper's; 0 is plain cross-entropy training)` },
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
  beta?: number;
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
  /** TRADES's β (default TRADES_BETA). */
  beta?: number;
  keepClean?: boolean;
  /** Seeds the random starts (each step draws its own from seed and the step number). */
  seed?: number;
}

export interface Defence {
  metadata: Record<string, unknown>;
  /** Set by the recipes that swap attacked images into the batch (all but trades). */
  transformBatch?: NonNullable<TrainOptions['transformBatch']>;
  /** Set by trades, which changes the loss instead. */
  batchLoss?: NonNullable<TrainOptions['batchLoss']>;
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
    steps: args['pgd-steps'],
    beta: args.beta,
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
  if (s.beta !== undefined && s.recipe !== 'trades') problems.push(`--beta is a weight of --adversarial trades, not of ${s.recipe}`);
  if (s.beta !== undefined && !(s.beta >= 0 && Number.isFinite(s.beta))) problems.push(`--beta must be a finite number ≥ 0 (got ${s.beta})`);
  if (s.recipe === 'trades' && (s.mix !== undefined || s.keepClean)) problems.push('--mix and --keep-clean do not apply to --adversarial trades (its loss always sees the clean batch and one attacked copy of it)');
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
  const steps = recipe === 'pgd' ? (s.steps ?? PGD_TRAINING_STEPS) : recipe === 'trades' ? (s.steps ?? TRADES_TRAINING_STEPS) : 1;
  const mix = s.mix ?? (recipe === 'fgsm' ? 0.5 : 1);
  const keepClean = s.keepClean ?? false;
  const seed = s.seed ?? 0;
  let alpha = s.alpha ?? defaultAlpha(recipe, epsilon, steps);
  let share = 1;
  const metadata: Record<string, unknown> =
    recipe === 'trades'
      ? {
          kind: 'adversarial-training',
          attack: recipe,
          epsilon,
          steps,
          alpha,
          beta: s.beta ?? TRADES_BETA,
          randomStart: `${TRADES_START_NOISE}·N(0, 1) around the image`,
          loss: 'CE(f(x), y) + β · KL(f(x) ‖ f(x′)) / n, gradient through both',
        }
      : {
          kind: 'adversarial-training',
          attack: recipe,
          epsilon,
          mix,
          ...(recipe === 'pgd' ? { steps } : {}),
          ...(recipe !== 'fgsm' || s.alpha !== undefined ? { alpha } : {}),
          ...(recipe !== 'fgsm' ? { randomStart: 'uniform in the ε-ball' } : {}),
          ...(keepClean ? { keepClean } : {}),
        };
  const control = {
    metadata,
    stepSize: () => alpha,
    lowerStep: (factor: number) => (alpha *= factor),
    warmUp: (next: number) => {
      share = Math.min(1, Math.max(next, 1e-3));
    },
  };
  if (recipe === 'trades') {
    const beta = s.beta ?? TRADES_BETA;
    return {
      ...control,
      // Every step draws a fresh start (as the pgd recipes do), from the seed and the step number.
      batchLoss: (x, y, model, step = 0) => {
        const xAdv = tradesAttack(model, x, { epsilon: epsilon * share, steps, stepSize: alpha * share, seed: seed * 1_000_003 + step });
        return (logits) => tradesLoss(model, xAdv, y, beta, logits);
      },
    };
  }
  return {
    ...control,
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
