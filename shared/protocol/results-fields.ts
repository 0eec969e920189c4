import { z } from 'zod';

/** The building blocks the result files' schemas (results.ts, evaluation.ts) share. */
export const RESULTS_SCHEMA_VERSION = 1;

export const count = z.number().int().nonnegative();
/** z.number() refuses NaN and ±Infinity, which JSON would silently turn into null. */
export const finite = z.number();
/** A share in [0, 1], null when its denominator is empty. */
export const rate = z.number().min(0).max(1).nullable();
export const seconds = z.number().nonnegative();
export const label = z.number().int().nonnegative();

/** What every result file records about the software and machine that produced it (shared/versions.ts). */
export const provenance = {
  seed: count,
  backend: z.string(),
  threads: count,
  versions: z.strictObject({ transferlab: z.string(), tfjs: z.string(), node: z.string() }),
  cores: count,
};

/** Each issue as `path: message`, the path dotted from the file's top (what a person opens the file at). */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `  - ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`)
    .concat(error.issues.length > 8 ? [`  … and ${error.issues.length - 8} more`] : [])
    .join('\n');
}


/**
 * A measure the key's budget cut short, kept because the run allowed partial figures: its figures are
 * over the `measured` images only, so no reader may take them as whole.
 */
export const partialMeasureSchema = z.strictObject({
  /** 'transfer', 'boundary.distances', 'boundary.nearest', 'boundary.maps' or 'query-attack'. */
  measure: z.string(),
  /** What `measured` and `planned` count: images (for the transfer sweep and the maps, over all their points). */
  unit: z.literal('images'),
  measured: count,
  planned: count,
  reason: z.literal('budget_exhausted'),
});
export type PartialMeasure = z.infer<typeof partialMeasureSchema>;

const plannedPurpose = z.strictObject({ planned: count, atMost: z.boolean(), paid: count });

/** Victim queries planned from the settings before the first paid one (an upper bound where `atMost`), beside those paid. */
export const plannedVsPaidSchema = z.strictObject({
  attack: plannedPurpose,
  measurement: plannedPurpose,
  parts: z.array(z.strictObject({ purpose: z.enum(['attack', 'measurement']), what: z.string(), queries: count, atMost: z.boolean() })),
  /** The key's budget before the first paid query (GET /v1/budget); null when the victim did not say. */
  budget: z.strictObject({ used: count, limit: count.nullable() }).nullable(),
});
export type PlannedVsPaid = z.infer<typeof plannedVsPaidSchema>;
