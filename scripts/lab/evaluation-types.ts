/** The defence evaluation's figures: what evaluate.ts measures and masking.ts, the table and the report read. */
import type { Rate } from '../../shared/metrics.js';
import type { PartialMeasure } from '../../adversary/run/measure-cut.js';

/** Every attack the evaluation can run, in the order it runs them (the cascade's and the shares' order). */
export const ATTACK_RUNS = ['fgsm', 'pgd', 'pgd-margin', 'apgd-ce', 'apgd-t', 'square', 'rays'] as const;
export type AttackRun = (typeof ATTACK_RUNS)[number];
export type WhiteboxAttack = AttackRun | 'worst';
export const WHITEBOX_ATTACKS: readonly WhiteboxAttack[] = [...ATTACK_RUNS, 'worst'];

export interface EvaluationOptions {
  count: number;
  epsilons: number[];
  /** PGD iterations (default 50). */
  pgdSteps: number;
  /** PGD step size (default 0.01). */
  pgdStepSize: number;
  /** Random starts of PGD on cross-entropy (default 10). */
  restarts: number;
  /** Random starts of PGD on the margin loss (default 1). */
  marginRestarts: number;
  seed: number;
  /** The attacks run, in ATTACK_RUNS order (default here: the first three, FGSM and both PGDs; the CLI's: all). */
  attacks?: AttackRun[];
  /** APGD iterations (default 100). */
  apgdSteps?: number;
  /** APGD-T's target classes per image (default 9). */
  apgdTargets?: number;
  /** Square Attack's queries per image (default 5,000). */
  squareQueries?: number;
  /** RayS's queries per image (default 2,000). */
  raysQueries?: number;
  /** APGD-T, Square and RayS attack only the images still standing (default true; evaluate-ensemble.ts). */
  cascade?: boolean;
  /** Which test images: the campaign's seeded evaluation split (default) or the first `count`. */
  sample?: 'split' | 'first';
  /** Progress lines of the long attacks. */
  log?: (line: string) => void;
  /** The test images' dataset (`--dataset`); default: the one the model's metadata names, else MNIST. */
  dataset?: string;
  /** After each restart of a PGD attack: the images still standing (progress of a long evaluation). */
  onRestart?: (at: { epsilon: number; loss: 'ce' | 'margin'; run: number; runs: number; standing: number; total: number }) => void;
}

export const EVALUATION_DEFAULTS = {
  count: 1000, epsilons: [0.1, 0.2, 0.3], pgdSteps: 50, pgdStepSize: 0.01, restarts: 10, marginRestarts: 1, seed: 1,
  attacks: [...ATTACK_RUNS] as AttackRun[], apgdSteps: 100, apgdTargets: 9, squareQueries: 5000, raysQueries: 2000, cascade: true,
};
/** `--quick`: a look in minutes, not a figure to report (fewer images, starts, targets and queries). */
export const QUICK = { count: 100, restarts: 2, apgdTargets: 3, squareQueries: 1000, raysQueries: 500 };

export interface WhiteboxPoint {
  attack: WhiteboxAttack;
  epsilon: number;
  accuracy: Rate;
  /** Share of the images the model gets right cleanly that the attack makes it get wrong. */
  successRate: Rate;
  seconds: number;
  /** Images the attack ran on (fewer than the sample in a cascade; its accuracy is then null). */
  ranOn?: number;
  /** Images it fooled among those it ran on. */
  fooled?: number;
  /** On the worst case: images each attack broke first, in run order (`clean`: wrong without attack). */
  shares?: Record<string, number>;
}

export interface CampaignPoint {
  epsilon: number;
  misclassificationRate: Rate;
  transferRate: Rate;
}

export interface ModelEvaluation {
  model: string;
  /** The dataset whose test images were attacked. */
  dataset: string;
  arch: string;
  defence: unknown;
  trainSeconds: number | null;
  cleanAccuracy: Rate;
  /** Clean accuracy on the `count` white-box images (the baseline the attacked figures fall from). */
  cleanAccuracyOnSample: Rate;
  whitebox: WhiteboxPoint[];
  whiteboxSeconds: number;
  campaign: {
    runDir: string;
    attackQueries: number;
    agreement: Rate;
    points: CampaignPoint[];
    durationSeconds: number;
    /** Measures the served victim's budget cut short (allowPartial): `points` then lack the ε after the cut. */
    partial?: PartialMeasure[];
  } | null;
  masking: MaskingVerdict;
  /** metadata.json says the model was trained without any defence. */
  undefended: boolean;
  /** The overfitting guard's readings during training, when it ran (metadata.json). */
  guardReadings: { epoch: number; robustAccuracy: number; cleanAccuracy: number; learningRate?: number | null; stepSize?: number | null; event?: string }[] | null;
}

export interface MaskingVerdict {
  suspected: boolean;
  reasons: string[];
  /** Observations that do not count towards the verdict (rule 1 on an undefended model). */
  notes?: string[];
}
