import { z } from 'zod';
import { TransferlabError } from '../errors.js';
import { count, describeIssues, finite, partialMeasureSchema, provenance, rate, RESULTS_SCHEMA_VERSION, seconds } from './results-fields.js';

/**
 * evaluation.json, the defence evaluation's file (scripts/lab/): not a run but several models
 * measured side by side, each with white-box attacks and optionally a campaign (whose own run
 * folder holds a campaign results.json). Versioned with the same number as results.json.
 */
/** The attacks an evaluation may run, in run order, and the worst case over them. */
export const EVALUATION_ATTACKS = ['fgsm', 'pgd', 'pgd-margin', 'apgd-ce', 'apgd-t', 'square', 'rays', 'worst'] as const;

const evaluatedModel = z.strictObject({
  model: z.string(),
  dataset: z.string(),
  arch: z.string(),
  /** The defence the model's metadata records, as written there (its shape is the trainer's). */
  defence: z.unknown(),
  trainSeconds: seconds.nullable(),
  cleanAccuracy: rate,
  cleanAccuracyOnSample: rate,
  whitebox: z.array(
    z.strictObject({
      attack: z.enum(EVALUATION_ATTACKS),
      epsilon: finite,
      /** Null for an attack that ran on only the images still standing (a cascade): it has no accuracy of its own. */
      accuracy: rate,
      successRate: rate,
      seconds,
      /** Images the attack ran on, and how many of them it fooled (absent in files from before the ensemble). */
      ranOn: count.optional(),
      fooled: count.optional(),
      /** On the worst case: images each attack broke first, in run order; `clean` counts those wrong without attack. */
      shares: z.partialRecord(z.enum([...EVALUATION_ATTACKS, 'clean']), count).optional(),
    }),
  ),
  whiteboxSeconds: seconds,
  campaign: z
    .strictObject({
      runDir: z.string(),
      attackQueries: count,
      agreement: rate,
      points: z.array(z.strictObject({ epsilon: finite, misclassificationRate: rate, transferRate: rate })),
      durationSeconds: seconds,
      partial: z.array(partialMeasureSchema).optional(),
    })
    .nullable(),
  masking: z.strictObject({ suspected: z.boolean(), reasons: z.array(z.string()), notes: z.array(z.string()).optional() }),
  undefended: z.boolean(),
  // The overfitting guard's readings as training writes them (victim/train/guard.ts): read several times an
  // epoch, so `epoch` is fractional; the learning rate and the attack's step size at the time when known.
  guardReadings: z
    .array(
      z.strictObject({
        epoch: z.number().nonnegative(),
        robustAccuracy: finite,
        cleanAccuracy: finite,
        learningRate: finite.nullable().optional(),
        stepSize: finite.nullable().optional(),
        event: z.string().optional(),
      }),
    )
    .nullable(),
});

export const evaluationResultsSchema = z.strictObject({
  kind: z.literal('evaluation'),
  schemaVersion: z.literal(RESULTS_SCHEMA_VERSION),
  createdAt: z.iso.datetime(),
  ...provenance,
  settings: z.strictObject({
    epsilons: z.array(finite),
    images: count,
    pgdSteps: count,
    pgdStepSize: finite,
    restarts: count,
    marginRestarts: count,
    campaign: z.boolean(),
    campaignConfig: z.string().nullable(),
    /** The attacks run and their settings (absent in files from before the ensemble, which ran FGSM and the two PGDs). */
    attacks: z.array(z.enum(EVALUATION_ATTACKS)).optional(),
    apgdSteps: count.optional(),
    apgdTargets: count.optional(),
    squareQueries: count.optional(),
    raysQueries: count.optional(),
    cascade: z.boolean().optional(),
    quick: z.boolean().optional(),
    /** Which test images: the campaign's seeded split or the first `images` (absent: the split). */
    sample: z.enum(['split', 'first']).optional(),
  }),
  models: z.array(evaluatedModel),
});

export type EvaluationResults = z.infer<typeof evaluationResultsSchema>;
export type EvaluatedModel = z.infer<typeof evaluatedModel>;

/** Parses evaluation.json's text; the error names the file and each field that does not fit. */
export function parseEvaluationJson(text: string, where: string): EvaluationResults {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TransferlabError('results_invalid', `${where} is not JSON: ${(e as Error).message}`);
  }
  // Files from before the schema carry no version; version 1 is the shape they already had.
  const raw = value !== null && typeof value === 'object' && !Array.isArray(value) && !('schemaVersion' in value) ? { ...value, schemaVersion: RESULTS_SCHEMA_VERSION } : value;
  const parsed = evaluationResultsSchema.safeParse(raw);
  if (!parsed.success) throw new TransferlabError('results_invalid', `${where} is not a valid evaluation.json:\n${describeIssues(parsed.error)}`);
  return parsed.data;
}
