/**
 * Experiment: transfer against substitute architecture and attack method, on the default query
 * budget (seed 150, ρ = 6, λ = 0.1, τ = 3).
 *
 *   npm run experiment:substitutes -- [--victim URL | --model DIR] [--quick] [--out DIR]
 */
import { isMain, runMain } from '../shared/cli.js';
import { runExperiment, type Variant } from './experiment-lib.js';

export const substituteVariants = (quick: boolean): Variant[] => {
  const light = quick ? { rounds: 4, evalSize: 300, epochs: 5, epsilons: [0.1, 0.2, 0.3], boundary: { enabled: false } } : { boundary: { enabled: false } };
  // paper-cnn (the victim's layer shapes) transfers best but trains slowest: full runs only.
  const substitutes = quick ? ['substitute-cnn', 'papernot-mlp'] : ['substitute-cnn', 'paper-cnn', 'papernot-mlp'];
  const attacks = ['fgsm', 'mi-fgsm', 'pgd'] as const;
  return substitutes.flatMap((substitute) => attacks.map((attack) => ({ name: `${substitute}-${attack}`, settings: { substitute, attack, ...light } })));
};

if (isMain(import.meta.url)) runMain((argv) => runExperiment('substitutes', argv, substituteVariants));
