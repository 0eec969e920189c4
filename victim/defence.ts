import * as tf from '@tensorflow/tfjs';
import { runAttack, type AttackName } from '../shared/attacks.js';
import { TransferlabError } from '../shared/errors.js';
import { fromLayers } from '../shared/model.js';
import type { TrainOptions } from '../shared/training.js';

/**
 * Adversarial training (AML.M0003 Model Hardening): part of every batch is replaced by
 * adversarial versions crafted white-box against the model as it is at that step, so the
 * examples keep up with what the model has learnt.
 */
export const DEFENCE_OPTIONS = {
  adversarial: { type: 'string', choices: ['none', 'fgsm', 'pgd'], default: 'none', describe: 'adversarial training attack' },
  eps: { type: 'number', default: 0.3, describe: 'adversarial training ε (L∞)' },
  mix: { type: 'number', default: 0.5, describe: 'share of each batch replaced by adversarial examples (0..1]' },
  'pgd-steps': { type: 'number', default: 7, describe: 'PGD steps for --adversarial pgd' },
  'keep-clean': {
    type: 'boolean',
    default: false,
    describe: 'add the adversarial copies beside their clean originals instead of replacing them (with --mix 1: Goodfellow et al.\'s ½ clean + ½ adversarial loss)',
  },
} as const;

export interface DefenceArgs {
  adversarial?: string;
  eps?: number;
  mix?: number;
  'pgd-steps'?: number;
  'keep-clean'?: boolean;
}

export interface Defence {
  metadata: Record<string, unknown>;
  transformBatch: NonNullable<TrainOptions['transformBatch']>;
}

export function defenceFromArgs(args: DefenceArgs): Defence | undefined {
  const attack = args.adversarial ?? 'none';
  if (attack === 'none') return undefined;
  const eps = args.eps ?? 0.3;
  const mix = args.mix ?? 0.5;
  const steps = args['pgd-steps'] ?? 7;
  const problems: string[] = [];
  if (attack !== 'fgsm' && attack !== 'pgd') problems.push(`--adversarial must be none, fgsm or pgd (got ${attack})`);
  if (!(eps > 0 && eps <= 1)) problems.push(`--eps must be in (0, 1] (got ${eps})`);
  if (!(mix > 0 && mix <= 1)) problems.push(`--mix must be in (0, 1] (got ${mix})`);
  if (!Number.isInteger(steps) || steps < 1) problems.push(`--pgd-steps must be a positive integer (got ${steps})`);
  if (problems.length) throw new TransferlabError('invalid_config', problems.join('; '));
  return adversarialTraining(attack as AttackName, eps, mix, steps, args['keep-clean'] ?? false);
}

export function adversarialTraining(attack: AttackName, epsilon: number, mix: number, steps: number, keepClean = false): Defence {
  return {
    metadata: { kind: 'adversarial-training', attack, epsilon, mix, ...(attack === 'pgd' ? { steps } : {}), ...(keepClean ? { keepClean } : {}) },
    transformBatch: (x, y, model) => {
      const n = x.shape[0];
      const k = Math.max(1, Math.round(n * mix));
      const labels = y.slice(0, k).dataSync() as Int32Array;
      const head = x.slice([0, 0, 0, 0], [k, -1, -1, -1]);
      const { raw, clipped } = runAttack(attack, fromLayers(model), head, labels, {
        epsilon,
        steps,
        stepSize: attack === 'pgd' ? (2.5 * epsilon) / steps : undefined,
        randomStart: attack === 'pgd',
      });
      raw.dispose();
      // Keeping the clean originals costs a larger batch but spares the clean accuracy.
      if (keepClean) return { x: tf.concat([x, clipped]), labels: tf.concat([y, y.slice(0, k)]) };
      return k === n ? clipped : tf.concat([clipped, x.slice([k, 0, 0, 0], [n - k, -1, -1, -1])]);
    },
  };
}
