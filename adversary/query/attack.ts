/**
 * Decision-based attacks on many images at once, as a pure function over a labeller: RayS (L∞) or
 * HopSkipJump (L2 / L∞), untargeted (leave the victim's clean label) or targeted (reach a given
 * class, starting from an image of it). Randomness is seeded per image, so a rerun over the same
 * answers (a resumed run reading its answer cache) asks exactly the same probes again.
 */
import { createRng } from '../../shared/random.js';
import { TransferlabError } from '../../shared/errors.js';
import { hsjaSearch } from './hsja.js';
import { raysSearch } from './rays.js';
import { runLockStep, type LockStepResult, type Norm, type SearchSpec } from './search.js';
import type { Labeler } from '../../shared/labeler.js';
import type { ProbeShaper } from './evasion.js';

/** rays and hsja ask for labels (search.ts); square for scores (square.ts), from a victim that gives them. */
export const QUERY_ATTACKS = ['rays', 'hsja', 'square'] as const;
export type QueryAttackName = (typeof QUERY_ATTACKS)[number];

export interface QueryAttackSettings {
  attack: QueryAttackName;
  norm: Norm;
  queriesPerImage: number;
  seed: number;
  /** Stop an image's search once its best distance is ≤ this (default: spend the budget). */
  stopAt?: number;
}

export interface AttackTargets {
  images: Float32Array;
  count: number;
  /** The victim's labels of the clean images: what an untargeted attack must leave. */
  original: ArrayLike<number>;
  /** Per image the class to reach (targeted), with an image of it to start from. */
  targets?: ArrayLike<number>;
  starts?: Float32Array[];
}

/** Separates the attack's per-image random streams from the other uses of the seed. */
const SEARCH_SALT = 0x9e3779b1;

function signToward(x: Float32Array, to: Float32Array): Float32Array {
  // Pixels the two images share (mostly background) move towards black, so they stay unchanged.
  return Float32Array.from(x, (v, p) => (to[p] > v ? 1 : -1));
}

export function searchSpecs(s: QueryAttackSettings, t: AttackTargets): SearchSpec[] {
  if (s.attack === 'square') throw new TransferlabError('bad_attack_input', 'Square Attack searches over scores, not in lock-step over labels: run it with runSquare (square.ts)');
  if (s.attack === 'rays' && s.norm !== 'linf') {
    throw new TransferlabError('bad_attack_input', 'RayS is an L∞ attack; use --norm linf (or --attack hsja for L2)');
  }
  const pixels = t.images.length / t.count;
  if (!Number.isInteger(pixels) || t.count < 1) throw new TransferlabError('bad_attack_input', `${t.images.length} values do not hold ${t.count} images`);
  if (t.targets && (!t.starts || t.starts.length !== t.count || t.targets.length !== t.count)) {
    throw new TransferlabError('bad_attack_input', 'a targeted attack needs a target and a starting image for every image');
  }
  return Array.from({ length: t.count }, (_, i) => {
    const x = t.images.slice(i * pixels, (i + 1) * pixels);
    const target = t.targets?.[i];
    const original = t.original[i];
    const start = t.starts?.[i];
    const adversarial = target === undefined ? (l: number) => l !== original : (l: number) => l === target;
    const rng = createRng((s.seed ^ SEARCH_SALT) + i * 7919);
    return {
      x,
      adversarial,
      clean: original,
      start: (ctx) =>
        s.attack === 'rays'
          ? raysSearch(ctx, { stopAt: s.stopAt, initial: start ? signToward(x, start) : undefined })
          : hsjaSearch(ctx, { norm: s.norm, rng, start, stopAt: s.stopAt }),
    };
  });
}

export function runQueryAttack(
  s: QueryAttackSettings,
  t: AttackTargets,
  label: Labeler,
  onRound?: (round: number, asked: number, active: number) => void,
  shaper?: ProbeShaper,
  endWhenBlocked = false,
): Promise<LockStepResult> {
  return runLockStep(searchSpecs(s, t), label, { norm: s.norm, queriesPerImage: s.queriesPerImage, onRound, shaper, endWhenBlocked });
}
