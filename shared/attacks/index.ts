/**
 * L∞ gradient-sign attacks as pure functions over a differentiable `Model` (foolbox style), one file per
 * attack: fgsm.ts, bim.ts, pgd.ts, mi-fgsm.ts, the last three plans for the iterative base (iterative.ts)
 * over the gradient (gradient.ts); here their names, the dispatcher and the choice of targets.
 *
 * Semantics, fixed here once:
 * - Loss (`loss`, see losses.ts): softmax cross-entropy from logits via logSoftmax (default), or
 *   the CW margin on logits; summed over the batch so that each image's gradient does not depend on how
 *   many images share its batch.
 * - Untargeted steps go up the loss of the true label: x + α·sign(∇x J(x, y)).
 *   Targeted steps go down the loss of the target:   x − α·sign(∇x J(x, y_target)).
 * - Every iterate is projected onto the L∞ ball of radius ε around x intersected with `model.bounds`.
 * - Default step sizes (steps default 10):
 *     fgsm     one step of ε (steps/stepSize/randomStart ignored);
 *     bim      1.25·ε/steps (Kurakin et al.'s budget: the path may overshoot and come back);
 *     pgd      2.5·ε/steps with a uniform random start in the ball (the start may sit ε on the wrong
 *              side, so the path must be able to cross the whole ball);
 *     mi-fgsm  ε/steps with decay μ = 1 (Dong et al. 2018).
 * - `raw` is the last step's result before its projection (for FGSM exactly x + ε·sign(∇), possibly
 *   outside [0, 1]); `clipped` is the final in-bounds, in-ball adversarial example.
 * - Random starts are drawn once for the whole input (seed default 0), so results do not depend on
 *   `batchSize`, which only bounds memory.
 * Callers own (and must dispose) both returned tensors; nothing else is left allocated.
 */
import type * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';
import type { Model } from '../model/model.js';
import { createRng } from '../random.js';
import { fail } from './gradient.js';
import type { AttackOptions, AttackResult } from './iterative.js';
import { fgsm } from './fgsm.js';
import { bim } from './bim.js';
import { pgd } from './pgd.js';
import { miFgsm } from './mi-fgsm.js';

export { attackGradient, inputGradientSign, type GradientOptions } from './gradient.js';
export type { AttackOptions, AttackResult } from './iterative.js';
export { randomStartOffsets } from './iterative.js';
export { fgsm, fgsmAlong } from './fgsm.js';
export { bim } from './bim.js';
export { pgd } from './pgd.js';
export { miFgsm } from './mi-fgsm.js';
// APGD returns which images it fooled, not a raw step: evaluations call it directly (not through runAttack).
export { apgd, apgdTargeted, apgdCheckpoints, type ApgdOptions, type ApgdResult } from './apgd.js';
// Score-based (black-box) attacks run over a scorer, not a Model: not in ATTACK_NAMES, which names the transfer attacks.
export { squareAttack, marginLoss, type Scorer, type SquareOptions, type SquareResult } from './square.js';

/** Every attack `runAttack` knows, in the order help texts list them; settings schemas build their enum from it. */
export const ATTACK_NAMES = ['fgsm', 'bim', 'pgd', 'mi-fgsm'] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

export function runAttack(
  name: AttackName,
  model: Model,
  x: tf.Tensor4D,
  labels: Int32Array,
  opts: AttackOptions,
): AttackResult {
  switch (name) {
    case 'fgsm':
      return fgsm(model, x, labels, opts);
    case 'bim':
      return bim(model, x, labels, opts);
    case 'pgd':
      return pgd(model, x, labels, opts);
    case 'mi-fgsm':
      return miFgsm(model, x, labels, opts);
    default: {
      const unknown: never = name;
      throw new TransferlabError('unknown_attack', `unknown attack '${String(unknown)}'; use one of ${ATTACK_NAMES.join(', ')}`);
    }
  }
}

/** The projected images of an attack's result as data, its tensors released (the raw step is not kept). */
export function projectedImages({ raw, clipped }: AttackResult): Float32Array {
  raw.dispose();
  const data = clipped.dataSync() as Float32Array;
  clipped.dispose();
  return data;
}

/**
 * Target classes for a targeted attack.
 * 'random': a uniformly drawn class other than the image's label, reproducible from `seed`;
 * 'next':   (label + 1) mod classes;
 * a number: that class for every image — images already of that class keep it as their target, so
 *           pass `truth` to `targetedSuccessRate` to leave them out of the measure.
 */
export function chooseTargets(
  labels: Int32Array,
  mode: 'random' | 'next' | number,
  seed: number,
  classes = 10,
): Int32Array {
  if (!Number.isInteger(classes) || classes < 2) fail(`classes must be an integer ≥ 2, got ${classes}`);
  for (const v of labels) {
    if (!Number.isInteger(v) || v < 0 || v >= classes) fail(`label ${v} is out of range for ${classes} classes`);
  }
  if (typeof mode === 'number') {
    if (!Number.isInteger(mode) || mode < 0 || mode >= classes) {
      fail(`target class ${mode} is out of range for ${classes} classes`);
    }
    return new Int32Array(labels.length).fill(mode);
  }
  if (mode === 'next') return labels.map((v) => (v + 1) % classes);
  if (mode !== 'random') fail(`unknown target mode '${String(mode)}'; use 'random', 'next' or a class index`);
  const rand = createRng(seed);
  // An offset in 1..classes−1 is uniform over the other classes and can never land on the label.
  return labels.map((v) => (v + 1 + Math.floor(rand() * (classes - 1))) % classes);
}
