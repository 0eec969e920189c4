import { z } from 'zod';
import { TransferlabError } from '../errors.js';
import { victimInfoSchema } from './contract.js';
import { threatSchema } from './output.js';
import { count, describeIssues, finite, label, partialMeasureSchema, plannedVsPaidSchema, provenance, rate, RESULTS_SCHEMA_VERSION, seconds } from './results-fields.js';

export { describeIssues, RESULTS_SCHEMA_VERSION } from './results-fields.js';

/**
 * The contract of a run folder's results.json: what every run kind writes and what the report,
 * compare, sweeps and scripts read. One discriminated union by `kind`; every object strict, so a
 * writer that adds, renames or drops a field fails validation before anything is written, and a
 * reader meets a clear error (the file and the field's path) instead of a crash deep inside a page.
 * The writers' TypeScript types are inferred from these schemas. Bump RESULTS_SCHEMA_VERSION when a
 * change means a reader of the old version would misread a new file.
 */
const common = {
  schemaVersion: z.literal(RESULTS_SCHEMA_VERSION),
  name: z.string(),
  createdAt: z.iso.datetime(),
  ...provenance,
  durationSeconds: seconds,
};

export const datasetSummarySchema = z.strictObject({
  name: z.string(),
  kind: z.enum(['builtin', 'idx-folder', 'image-folder']),
  source: z.string(),
  shape: z.tuple([count, count, count]),
  classes: count,
  classNames: z.array(z.string()),
  trainImages: count,
  testImages: count,
});

const mode = z.enum(['untargeted', 'targeted']);

export const sweepPointSchema = z.strictObject({
  mode,
  epsilon: finite,
  misclassificationRate: rate,
  transferRate: rate,
  /** null for untargeted attacks as well as for an empty denominator. */
  targetedSuccessRate: rate,
  craftModelSuccessRate: rate,
  measurementQueries: count,
  meanL2: finite.nullable().optional(),
});

export const perClassTableSchema = z.strictObject({
  mode,
  epsilon: finite,
  matrix: z.array(z.array(count)),
  transferRate: z.array(rate),
});

export const roundRecordSchema = z.strictObject({
  round: count,
  substituteSize: count,
  attackQueries: count,
  substituteAccuracy: finite,
  agreement: finite,
  lambda: finite,
  trainSeconds: seconds,
  augmentSeconds: seconds,
});

export const memberRecordSchema = z.strictObject({
  member: count,
  arch: z.string(),
  round: count.optional(),
  substituteAccuracy: rate,
  agreement: rate,
  trainSeconds: seconds,
});

const distance = finite.nullable();
const distanceSummary = z.strictObject({
  images: count,
  flipped: count,
  flipRate: rate,
  min: distance,
  q25: distance,
  median: distance,
  q75: distance,
  max: distance,
});

const boundaryMap = z.strictObject({
  index: count,
  trueLabel: label,
  substituteLabel: label,
  victimLabel: label,
  grid: count,
  extent: finite,
  substituteLabels: z.array(label),
  victimLabels: z.array(label),
  agreement: rate,
  queries: count,
  image: z.string(),
  caption: z.string(),
});

const nearestBoundary = z.strictObject({
  method: z.literal('rays'),
  images: count,
  queriesPerImage: count,
  victim: z.array(distance),
  substitute: z.array(distance),
  victimSummary: distanceSummary,
  substituteSummary: distanceSummary,
  pearson: finite.nullable(),
  cosine: z.array(finite.nullable()),
  medianCosine: finite.nullable(),
  adbd: z.strictObject({ victim: z.array(distance), substitute: z.array(distance) }),
  queries: count,
  probes: count,
  partial: partialMeasureSchema.optional(),
});

export const boundaryResultsSchema = z.strictObject({
  direction: z.literal('substitute-fgsm-sign'),
  craftLabel: z.enum(['oracle', 'substitute']),
  epsilonMax: finite,
  precision: finite,
  images: count,
  truth: z.array(label),
  substituteDistances: z.array(distance),
  victimDistances: z.array(distance),
  victimFlippedTo: z.array(label.nullable()),
  substituteFlippedTo: z.array(label.nullable()),
  stats: z.strictObject({
    substitute: distanceSummary,
    victim: distanceSummary,
    bothFlipped: count,
    pearson: finite.nullable(),
    compared: count,
    victimNearer: rate,
    victimFarther: rate,
    equal: rate,
    medianGap: finite.nullable(),
  }),
  maps: z.array(boundaryMap),
  mapAgreement: rate,
  nearest: nearestBoundary.nullable().optional(),
  queries: z.strictObject({ distances: count, maps: count, nearest: count.optional() }),
  probes: z.strictObject({ distances: count, maps: count }),
  partial: z.array(partialMeasureSchema).optional(),
});

/**
 * Queries a campaign paid, by purpose, over the run folder's whole life. Fields that break the
 * figures down further (planned against paid, per purpose) belong here.
 */
export const campaignQueriesSchema = z.strictObject({ attack: count, measurement: count, cached: count });

/**
 * The fields of a transfer run: the black-box campaign and the white-box baseline write the same
 * shape (the baseline with no substitute: null agreement, no rounds, no boundary). Fields a campaign
 * adds (e.g. markers of a measure left partial) go here, optional when the baseline has no use for them.
 */
const transferRunFields = {
  ...common,
  victim: z.strictObject({ url: z.string().optional(), model: z.string().optional(), info: victimInfoSchema.optional(), arch: z.string().optional() }),
  /** The images the seed and evaluation sets were drawn from (their test part). */
  dataset: datasetSummarySchema.optional(),
  /** The resolved settings; adversary/campaign/config.ts holds their schema and validated them when the run began. */
  config: z.record(z.string(), z.unknown()),
  /** What the campaign used of each answer (shared/protocol/output.ts); absent: label (older runs, the white-box baseline). */
  threat: threatSchema.optional(),
  queries: campaignQueriesSchema,
  victimCleanAccuracy: rate,
  substituteCleanAccuracy: rate,
  agreement: rate,
  rounds: z.array(roundRecordSchema),
  /** An ensemble's other members (the first is the rounds' substitute) and how they were combined. */
  ensemble: z.strictObject({ combine: z.string(), members: z.array(memberRecordSchema) }).optional(),
  epsilons: z.array(sweepPointSchema),
  perClass: z.array(perClassTableSchema),
  boundary: boundaryResultsSchema.nullable(),
  queryPlan: plannedVsPaidSchema.optional(),
  /** Measures the key's budget cut short (allowPartial); empty or absent: every measure is whole. */
  partial: z.array(partialMeasureSchema).optional(),
  /** PNG pictures, relative to the run folder. */
  images: z.strictObject({ grids: z.array(z.string()), maps: z.array(z.string()) }).optional(),
  /** Seconds by kind of work, summed over the run's sessions. */
  phases: z.record(z.string(), seconds),
};

export const campaignResultsSchema = z.strictObject({ kind: z.literal('campaign'), ...transferRunFields });
export const whiteboxResultsSchema = z.strictObject({ kind: z.literal('whitebox'), ...transferRunFields });

export const budgetPointSchema = z.strictObject({
  queriesPerImage: count,
  success: z.record(z.string(), rate),
  misclassification: z.record(z.string(), rate),
  medianLinf: finite.nullable(),
  medianL2: finite.nullable(),
  found: count,
});

export const epsilonSummarySchema = z.strictObject({ epsilon: finite, success: rate, medianQueries: finite.nullable() });

export const queryAttackResultsSchema = z.strictObject({
  kind: z.literal('query-attack'),
  ...common,
  victim: z.strictObject({ url: z.string(), info: victimInfoSchema }),
  /** The images attacked were drawn from this dataset's test part (images.json's testIndex; absent in older runs). */
  dataset: datasetSummarySchema.optional(),
  /** The resolved settings, never the key (adversary/query/config.ts validates them, with their defaults, when the run begins). */
  config: z.strictObject({
    victim: z.string(),
    format: z.string(),
    attack: z.string(),
    norm: z.string(),
    targeted: z.boolean(),
    images: count,
    queriesPerImage: count,
    seed: count,
    seedSize: count,
    dataset: z.string().optional(),
    epsilons: z.array(finite),
    stopAt: finite.optional(),
    /** How the model was reached (adversary/targets/settings.ts; absent in older runs). */
    target: z.string().optional(),
    modelName: z.string().optional(),
    modelVersion: z.string().optional(),
    layout: z.string().optional(),
    maxBatch: count.optional(),
    outputName: z.string().optional(),
    inputShape: z.string().optional(),
    classes: count.optional(),
    classNames: z.array(z.string()).optional(),
    targetFile: z.string().optional(),
    /** The client's own limits (adversary/oracle/limits.ts; absent in older runs). */
    budget: count.optional(),
    concurrency: count.optional(),
    rps: finite.optional(),
    /** Square Attack's radius and first window share (absent in older runs). */
    epsilon: finite.optional(),
    pInit: finite.optional(),
    allowPartial: z.boolean().optional(),
    matchRate: finite.optional(),
    keysFile: z.string().optional(),
    keyOrder: z.string().optional(),
    requestSize: count.optional(),
    blinding: z.boolean().optional(),
    adaptive: z.boolean().optional(),
  }),
  /**
   * Against a detector that refuses attack queries (403 query_rejected), this session: probes it refused
   * (resamples included; the attack's real cost in flagged queries), refused requests, adaptive resamples;
   * and the images paid by each key (Sybil: one entry per key of keysFile). Absent in older runs.
   */
  detection: z
    .strictObject({ flagged: count, refusedRequests: count, refusedImages: count, resamples: count, paidByKey: z.array(count) })
    .optional(),
  /** Paid over the run folder's whole life: attack = clean labels + starting pool + every probe. */
  queries: z.strictObject({ attack: count, measurement: count, cached: count, cleanLabels: count, startingPool: count, probes: count }),
  /** budget_exhausted: the key's budget cut the searches; key_blocked: the victim blocked the key (every Sybil key), the figures are what the attack got before. */
  stopped: z.enum(['budget_exhausted', 'key_blocked']).nullable(),
  queryPlan: plannedVsPaidSchema,
  /** Set when the key's budget cut the searches (allowPartial): every figure is over the `measured` images. */
  partial: partialMeasureSchema.nullable(),
  images: count,
  victimCleanAccuracy: rate,
  /** Median, over the images, of the queries each spent. */
  medianQueriesPerImage: finite.nullable(),
  epsilons: z.array(epsilonSummarySchema),
  curve: z.array(budgetPointSchema),
  /** Probes per image to reach `rate` misclassification at `epsilon`, and what that costs for all the images. */
  match: z.strictObject({ epsilon: finite, rate: finite, queriesPerImage: finite.nullable(), totalQueries: finite.nullable() }).nullable(),
  rounds: count,
  /** Seconds by kind of work (clean labels as `measurement`, the searches), summed over the run's sessions; absent in older runs. */
  phases: z.record(z.string(), seconds).optional(),
});

export const runResultsSchema = z.discriminatedUnion('kind', [campaignResultsSchema, whiteboxResultsSchema, queryAttackResultsSchema]);

export type RunResults = z.infer<typeof runResultsSchema>;
export type RunKind = RunResults['kind'];
export type CampaignRunResults = z.infer<typeof campaignResultsSchema>;
export type WhiteboxRunResults = z.infer<typeof whiteboxResultsSchema>;
/** The campaign and the white-box baseline: one shape, two kinds. */
export type TransferRunResults = CampaignRunResults | WhiteboxRunResults;
export type QueryAttackRunResults = z.infer<typeof queryAttackResultsSchema>;
export type SweepPointRecord = z.infer<typeof sweepPointSchema>;
export type RoundRecordEntry = z.infer<typeof roundRecordSchema>;

export const RUN_KINDS: readonly RunKind[] = ['campaign', 'whitebox', 'query-attack'];

/**
 * Parses what a results.json holds. `where` names the file in every error. A file from before the
 * schema (no schemaVersion) is read as version 1 when it otherwise fits, since version 1 is the shape
 * those writers already produced; a file with no `kind`, another kind, a newer version or any field
 * that does not fit is refused.
 */
export function parseRunResults(value: unknown, where: string): RunResults {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TransferlabError('results_invalid', `${where} is not a results object (it holds ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value})`);
  }
  const raw = value as Record<string, unknown>;
  if (!('kind' in raw)) {
    throw new TransferlabError('results_invalid', `${where} has no "kind": it names no run kind (${RUN_KINDS.join(', ')}), so it cannot be read`);
  }
  if (typeof raw.kind !== 'string' || !RUN_KINDS.includes(raw.kind as RunKind)) {
    throw new TransferlabError('results_invalid', `${where}: kind ${JSON.stringify(raw.kind)} is not a run kind transferlab knows (${RUN_KINDS.join(', ')})`);
  }
  const legacy = !('schemaVersion' in raw);
  if (typeof raw.schemaVersion === 'number' && raw.schemaVersion > RESULTS_SCHEMA_VERSION) {
    throw new TransferlabError('results_invalid', `${where} has schemaVersion ${raw.schemaVersion}; this transferlab reads up to ${RESULTS_SCHEMA_VERSION}: update transferlab to read it`);
  }
  const parsed = runResultsSchema.safeParse(legacy ? { ...raw, schemaVersion: RESULTS_SCHEMA_VERSION } : raw);
  if (!parsed.success) {
    const why = legacy ? ' (it has no schemaVersion: it was written before results.json had a schema, and does not fit version 1)' : '';
    throw new TransferlabError('results_invalid', `${where} is not a valid ${raw.kind} results.json${why}:\n${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

/** Parses results.json's text; a file that is not JSON is named with the parser's complaint. */
export function parseRunResultsJson(text: string, where: string): RunResults {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new TransferlabError('results_invalid', `${where} is not JSON: ${(e as Error).message}`);
  }
  return parseRunResults(value, where);
}

