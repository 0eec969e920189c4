/**
 * The settings that say how to reach the model: one zod shape, spread into every schema of a command
 * that talks to a victim (the campaign's, so `run`, `sweep` configs and campaign files; `query-attack`'s;
 * `target check`'s), so each flag is declared once (shared/schema-flags.ts makes the flags).
 */
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { oracleLimitsShape } from '../oracle/limits.js';
import { outputSchema } from '../../shared/protocol/output.js';

/** Every kind the flag names; registry.ts says which are built (the others answer "not available yet"). */
export const TARGET_KINDS = ['transferlab', 'oip', 'tfserving', 'torchserve', 'http', 'module'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

const INPUT_SHAPE = /^\s*(\d+)\s*[,x×]\s*(\d+)\s*[,x×]\s*(\d+)\s*$/;

export const targetSettingsShape = {
  target: z
    .enum(TARGET_KINDS)
    .default('transferlab')
    .describe('how the model is reached: transferlab (this project\'s victim API), oip (KServe v2 / Triton / MLServer), tfserving (TF Serving REST), torchserve, http (a target file), module (a script)'),
  modelName: z.string().min(1).optional().describe('the model\'s name on servers that host several (oip, tfserving, torchserve; default: model)'),
  modelVersion: z.string().min(1).optional().describe('the model version to query (default: the server\'s choice)'),
  layout: z.enum(['nhwc', 'nchw']).optional().describe('the input tensor\'s layout where the model\'s metadata leaves it ambiguous: nhwc or nchw'),
  maxBatch: z.number().int().min(1).max(100_000).optional().describe('most images per request to the target (default: what the server says, else 100)'),
  outputName: z.string().min(1).optional().describe('the output tensor to read the classes from (default: the first)'),
  token: z.string().min(1).optional().describe('an inference token sent as Authorization: Bearer (torchserve); never written to the run folder'),
  targetOutput: outputSchema
    .optional()
    .describe('what the torchserve handler answers, which only a paid answer would show: label (default), topk:K (its K best classes with probabilities, as the default image_classifier\'s top 5) or scores (every class)'),
  inputShape: z
    .string()
    .regex(INPUT_SHAPE, 'must be H,W,C, e.g. 28,28,1')
    .optional()
    .describe('the model\'s input H,W,C where the server does not describe it (or its metadata leaves sizes open)'),
  classes: z.number().int().min(2).optional().describe('the model\'s class count where the server does not describe it'),
  classNames: z.array(z.string().min(1)).min(2).optional().describe('the name of each class in index order, where the server answers with names (torchserve with an index_to_name.json)'),
  targetFile: z.string().min(1).optional().describe('the http target\'s file (YAML or JSON) or the module target\'s script (.ts or .js)'),
  // The client's own limits, whatever the target (oracle/limits.ts); they belong to a session, so a resumed run may change them.
  ...oracleLimitsShape,
};

const targetSettingsSchema = z.object(targetSettingsShape);
export type TargetSettings = z.infer<typeof targetSettingsSchema>;
export type TargetSettingsInput = z.input<typeof targetSettingsSchema>;
export const TARGET_KEYS = Object.keys(targetSettingsShape) as (keyof TargetSettings)[];
/** Each key's help line (its schema description), for commands that keep their help apart from the schema. */
export const TARGET_HELP = Object.fromEntries(TARGET_KEYS.map((k) => [k, targetSettingsShape[k].description ?? k])) as Record<keyof TargetSettings, string>;

/** The target settings out of a command's whole settings (the rest ignored), defaults filled. */
export function targetSettingsOf(settings: Readonly<Record<string, unknown>>): TargetSettings {
  const picked = Object.fromEntries(TARGET_KEYS.filter((k) => settings[k] !== undefined).map((k) => [k, settings[k]]));
  const parsed = targetSettingsSchema.safeParse(picked);
  if (!parsed.success) throw new TransferlabError('invalid_config', `target settings: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** --input-shape as [H, W, C], or undefined when not given. */
export function parseInputShape(text: string | undefined): [number, number, number] | undefined {
  if (text === undefined) return undefined;
  const m = INPUT_SHAPE.exec(text);
  const dims = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (dims.length !== 3 || dims.some((d) => d < 1)) throw new TransferlabError('invalid_config', `--input-shape '${text}' must be H,W,C with each ≥ 1, e.g. 28,28,1`);
  return dims as [number, number, number];
}
