/** The defence evaluation's figures: what evaluate.ts measures and masking.ts, the table and the report read. */
import type { Rate } from '../../shared/metrics.js';
import type { PartialMeasure } from '../../adversary/run/measure-cut.js';

export type WhiteboxAttack = 'fgsm' | 'pgd' | 'pgd-margin' | 'worst';
export const WHITEBOX_ATTACKS: readonly WhiteboxAttack[] = ['fgsm', 'pgd', 'pgd-margin', 'worst'];

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
  /** The test images' dataset (`--dataset`); default: the one the model's metadata names, else MNIST. */
  dataset?: string;
  /** After each restart of a PGD attack: the images still standing (progress of a long evaluation). */
  onRestart?: (at: { epsilon: number; loss: 'ce' | 'margin'; run: number; runs: number; standing: number; total: number }) => void;
}

export const EVALUATION_DEFAULTS = { count: 1000, epsilons: [0.1, 0.2, 0.3], pgdSteps: 50, pgdStepSize: 0.01, restarts: 10, marginRestarts: 1, seed: 1 };

export interface WhiteboxPoint {
  attack: WhiteboxAttack;
  epsilon: number;
  accuracy: Rate;
  /** Share of the images the model gets right cleanly that the attack makes it get wrong. */
  successRate: Rate;
  seconds: number;
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
  guardReadings: { epoch: number; robustAccuracy: number; cleanAccuracy: number; event?: string }[] | null;
}

export interface MaskingVerdict {
  suspected: boolean;
  reasons: string[];
  /** Observations that do not count towards the verdict (rule 1 on an undefended model). */
  notes?: string[];
}
