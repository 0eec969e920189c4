/**
 * The target file of the `http` target: how to reach a home-grown JSON API, in YAML or JSON. One
 * strict schema (a typo is refused with its path and the nearest known key, shared/settings-errors.ts);
 * secrets stay in the environment and are written `${NAME}` in the url, the headers or the body
 * template, substituted when the file is loaded (a variable that is not set is an error naming it
 * and the key that uses it). The body is a JSON template in which the string "$images" stands for the
 * batch; `images` says how each image is written there, `answer` where the labels (or the scores,
 * whose argmax is the label) are in the reply. Body and answer: http-target-body.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { parseSettings } from '../../shared/settings-errors.js';
import { parseJsonPath } from './json-path.js';

/** The placeholder of the batch in `body`, and of one image in `images.item`. */
export const IMAGES_PLACEHOLDER = '$images';
export const IMAGE_PLACEHOLDER = '$image';

const jsonPath = z.string().superRefine((p, ctx) => {
  try {
    parseJsonPath(p);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});
const positiveInt = z.number().int().min(1);

export const httpTargetSchema = z
  .strictObject({
    url: z.string().min(1).describe('where each batch is sent (may hold ${ENV} variables)'),
    method: z.enum(['POST', 'PUT']).default('POST'),
    headers: z.record(z.string(), z.string()).default({}).describe('sent with every request; ${ENV} variables keep secrets out of the file'),
    body: z.unknown().describe('JSON template of a request; the string "$images" stands for the batch (a list, one entry per image)'),
    images: z
      .strictObject({
        encoding: z.enum(['nested', 'flat', 'png-base64']).default('nested').describe('nested lists, one flat list per image, or a base64 PNG string'),
        layout: z.enum(['hwc', 'chw']).default('hwc').describe('order of the values in nested and flat lists'),
        scale: z.enum(['unit', 'byte']).default('unit').describe('pixel values in [0,1] (unit) or 0..255 integers (byte)'),
        item: z.unknown().optional().describe('JSON template of one image\'s entry; the string "$image" stands for the image (default: the image itself)'),
      })
      .prefault({}),
    answer: z
      .strictObject({
        labels: jsonPath.optional().describe('path to the labels (indices or class names), one per image'),
        scores: jsonPath.optional().describe('path to the scores, one list (or {class: score} object) per image; the label is their argmax'),
      })
      .refine((a) => (a.labels === undefined) !== (a.scores === undefined), { message: 'give exactly one of labels and scores' }),
    inputShape: z.tuple([positiveInt, positiveInt, positiveInt]).optional().describe('[height, width, channels] the model takes'),
    classes: positiveInt.optional(),
    classNames: z.array(z.string()).optional().describe('name of each class, in index order, when the answer names classes'),
    probe: z
      .strictObject({
        url: z.string().min(1).optional().describe('a free GET that describes the model (default: url)'),
        inputShape: jsonPath.optional(),
        classes: jsonPath.optional(),
        classNames: jsonPath.optional(),
      })
      .optional()
      .describe('where the API describes its model: paths to the input shape, the class count and names in a GET\'s answer'),
    maxBatch: positiveInt.default(1).describe('most images per request'),
    timeoutMs: positiveInt.optional(),
  })
  .superRefine((t, ctx) => {
    if (t.classNames && t.classes !== undefined && t.classNames.length !== t.classes) {
      ctx.addIssue({ code: 'custom', path: ['classNames'], message: `names ${t.classNames.length} classes but classes is ${t.classes}` });
    }
    if (countPlaceholders(t.body, IMAGES_PLACEHOLDER) !== 1) {
      ctx.addIssue({ code: 'custom', path: ['body'], message: `must hold the string "${IMAGES_PLACEHOLDER}" exactly once (where the batch goes)` });
    }
    if (t.images.item !== undefined && countPlaceholders(t.images.item, IMAGE_PLACEHOLDER) !== 1) {
      ctx.addIssue({ code: 'custom', path: ['images', 'item'], message: `must hold the string "${IMAGE_PLACEHOLDER}" exactly once (where the image goes)` });
    }
  });

export type HttpTargetSpec = z.infer<typeof httpTargetSchema>;
export type HttpTargetInput = z.input<typeof httpTargetSchema>;

function countPlaceholders(v: unknown, placeholder: string): number {
  if (v === placeholder) return 1;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + countPlaceholders(x, placeholder), 0);
  if (v !== null && typeof v === 'object') return Object.values(v).reduce((n: number, x) => n + countPlaceholders(x, placeholder), 0);
  return 0;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `${NAME}` in every string of `v` replaced by the environment's value; a missing one is an error naming it and where it is used. */
export function substituteEnv<T>(v: T, env: NodeJS.ProcessEnv, where: string, path: string[] = []): T {
  if (typeof v === 'string') {
    return v.replace(ENV_REF, (_, name: string) => {
      const value = env[name];
      if (value === undefined) {
        throw new TransferlabError('missing_env', `${where}: ${path.join('.') || '(value)'} uses \${${name}}, but the environment variable ${name} is not set`);
      }
      return value;
    }) as T;
  }
  if (Array.isArray(v)) return v.map((x, i) => substituteEnv(x, env, where, [...path, String(i)])) as T;
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substituteEnv(x, env, where, [...path, k])])) as T;
  }
  return v;
}

/** A target file's settings checked and its `${ENV}` variables substituted; `where` names the file in errors. */
export function resolveHttpTarget(input: unknown, where: string, env: NodeJS.ProcessEnv = process.env): HttpTargetSpec {
  const spec = parseSettings(httpTargetSchema, input, `target file ${where}`);
  // Substituted after validation: a secret's value never appears in a schema error.
  return {
    ...spec,
    url: substituteEnv(spec.url, env, where, ['url']),
    headers: substituteEnv(spec.headers, env, where, ['headers']),
    body: substituteEnv(spec.body, env, where, ['body']),
    probe: spec.probe?.url === undefined ? spec.probe : { ...spec.probe, url: substituteEnv(spec.probe.url, env, where, ['probe', 'url']) },
  };
}

/** Read a YAML or JSON target file (JSON is YAML, so one parser reads both). */
export function readHttpTargetFile(path: string, env: NodeJS.ProcessEnv = process.env): HttpTargetSpec {
  if (!existsSync(path)) throw new TransferlabError('target_file_missing', `target file not found: ${path}`);
  let data: unknown;
  try {
    data = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TransferlabError('target_file_unreadable', `cannot parse target file ${path}: ${(e as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new TransferlabError('invalid_config', `target file ${path} must hold a mapping (url, body, answer, …)`);
  }
  return resolveHttpTarget(data, path, env);
}
