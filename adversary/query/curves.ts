/**
 * What a decision-based attack achieved at each query budget, read off the images' improvement
 * traces: one run with Q queries per image gives the success rate, the misclassification rate and
 * the median perturbation at every budget up to Q. Success and misclassification at ε count an image
 * when any example recorded within the budget lies within ε in L∞ (for an L2 attack the best example
 * by L2 need not be the nearest in L∞); the medians are of the best example in the attack's own norm.
 */
import { median } from '../../shared/statistics.js';
import type { ImageOutcome, TracePoint } from './search.js';

export const CURVE_BUDGETS = [100, 200, 500, 1000, 2000, 5000];
export const CURVE_EPSILONS = [0.1, 0.2, 0.3];
/** Distances are multiples of 1/255 computed in float32; compare with a little slack. */
const SLACK = 1e-6;

export interface BudgetPoint {
  queriesPerImage: number;
  /** Per ε: share of images with an example within ε (L∞) found by this budget. */
  success: Record<string, number | null>;
  /** Per ε: share the victim labels wrongly (against the true label): clean mistakes count at distance 0. */
  misclassification: Record<string, number | null>;
  /** Median L∞ / L2 of the best example so far, over the images that have one. */
  medianLinf: number | null;
  medianL2: number | null;
  found: number;
}

export interface EpsilonSummary {
  epsilon: number;
  /** Share of images with an example within ε by the end of the run. */
  success: number | null;
  /** Median (over the successful images) of the queries it took to get within ε. */
  medianQueries: number | null;
}

export interface CurveInput {
  outcomes: ImageOutcome[];
  /** True labels (the simulator's knowledge), and the victim's clean labels. */
  truth: ArrayLike<number>;
  clean: ArrayLike<number>;
  queriesPerImage: number;
}

/** The best point of a trace within `budget` queries (the last improvement at or before it). */
export function bestWithin(trace: readonly TracePoint[], budget: number): TracePoint | null {
  let best: TracePoint | null = null;
  for (const p of trace) {
    if (p[0] > budget) break;
    best = p;
  }
  return best;
}

/** The queries an image needed to get within ε (L∞), or null when it never did. */
export function queriesToReach(trace: readonly TracePoint[], epsilon: number): number | null {
  for (const p of trace) if (p[1] <= epsilon + SLACK) return p[0];
  return null;
}

const share = (k: number, n: number) => (n === 0 ? null : k / n);
const key = (e: number) => e.toFixed(2);

export function budgetCurve(c: CurveInput, budgets = CURVE_BUDGETS, epsilons = CURVE_EPSILONS): BudgetPoint[] {
  const n = c.outcomes.length;
  const list = [...new Set([...budgets.filter((b) => b < c.queriesPerImage), c.queriesPerImage])].sort((a, b) => a - b);
  return list.map((budget) => {
    const best = c.outcomes.map((o) => bestWithin(o.trace, budget));
    const success: Record<string, number | null> = {};
    const misclassification: Record<string, number | null> = {};
    for (const e of epsilons) {
      let ok = 0;
      let wrong = 0;
      c.outcomes.forEach((o, i) => {
        // Any example recorded within the budget counts: for an L2 attack the best by L2 need not be the nearest in L∞.
        const within = o.trace.filter((p) => p[0] <= budget && p[1] <= e + SLACK);
        if (within.length > 0) ok++;
        if (c.clean[i] !== c.truth[i] || within.some((p) => p[3] !== c.truth[i])) wrong++;
      });
      success[key(e)] = share(ok, n);
      misclassification[key(e)] = share(wrong, n);
    }
    const found = best.filter((p): p is TracePoint => p !== null);
    return {
      queriesPerImage: budget,
      success,
      misclassification,
      medianLinf: median(found.map((p) => p[1])),
      medianL2: median(found.map((p) => p[2])),
      found: found.length,
    };
  });
}

export function epsilonSummaries(c: CurveInput, epsilons = CURVE_EPSILONS): EpsilonSummary[] {
  return epsilons.map((epsilon) => {
    const q = c.outcomes.map((o) => queriesToReach(o.trace, epsilon)).filter((v): v is number => v !== null);
    return { epsilon, success: share(q.length, c.outcomes.length), medianQueries: median(q) };
  });
}

/**
 * The fewest queries per image at which the victim's misclassification rate at ε reaches `rate`
 * (clean mistakes count without any query), or null when this run never reaches it.
 */
export function queriesForRate(c: CurveInput, epsilon: number, rate: number): number | null {
  const n = c.outcomes.length;
  const free = c.outcomes.filter((_, i) => c.clean[i] !== c.truth[i]).length;
  const needed = Math.ceil(rate * n - 1e-9) - free;
  if (needed <= 0) return 0;
  const q = c.outcomes
    .map((o, i) => {
      if (c.clean[i] !== c.truth[i]) return null;
      const p = o.trace.find((t) => t[1] <= epsilon + SLACK && t[3] !== c.truth[i]);
      return p ? p[0] : null;
    })
    .filter((v): v is number => v !== null)
    .sort((a, b) => a - b);
  return q.length >= needed ? q[needed - 1] : null;
}
