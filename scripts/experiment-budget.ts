/**
 * Experiment: transfer against query budget. Seed-set size × substitute rounds, everything else at
 * the Papernot defaults; attack queries grow as seedSize · 2^(rounds−1).
 *
 *   npm run experiment:budget -- [--victim URL | --model DIR] [--quick] [--out DIR]
 */
import { isMain, runMain } from '../shared/cli.js';
import { runExperiment, type Variant } from './experiment-lib.js';

export const budgetVariants = (quick: boolean): Variant[] => {
  const seeds = quick ? [50, 150] : [50, 150, 300];
  const rounds = quick ? [2, 4] : [2, 4, 6];
  const light = quick ? { evalSize: 300, epochs: 5, epsilons: [0.1, 0.2, 0.3], boundary: { enabled: false } } : { boundary: { enabled: false } };
  return seeds.flatMap((seedSize) => rounds.map((r) => ({ name: `seed${seedSize}-rounds${r}`, settings: { seedSize, rounds: r, ...light } })));
};

if (isMain(import.meta.url)) runMain((argv) => runExperiment('budget', argv, budgetVariants));
