/**
 * The `module` target: a TypeScript or JavaScript file the user writes for an endpoint no template
 * fits (an SDK, a signed request, a gRPC client). It exports `info` and `predict` — the
 * `TargetModule` type below — and is loaded with a dynamic import (tsx runs .ts files). `predict`
 * sees the bytes the oracle core quantised, as float32 in the module's range, and answers labels
 * (indices or class names) or scores (the label is their argmax); the counting, cache, budget and
 * limits around it are the oracle's, as for every target.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { parseSettings } from '../../shared/settings-errors.js';
import { argmax, classIndex, type ClassSpace, type OneAnswer } from './torchserve-answer.js';
import { batchAnswer, describedModel, requireUint8 } from './connection.js';
import type { TargetFactory, VictimInfo } from './target.js';
import { outputSchema } from '../../shared/protocol/output.js';

export interface TargetModuleInfo {
  /** [height, width, channels] of one image; `predict` gets images row-major H×W×C. */
  inputShape: [number, number, number];
  classes: number;
  /** Name of each class in index order, when `predict` answers with names. */
  classNames?: string[];
  /** Pixel range `predict` receives: [0, 1] (default) or [0, 255]. */
  range?: [0, 1] | [0, 255];
  /** Most images per `predict` call (default 64). */
  maxBatch?: number;
  /** What `predict` gives: `label` (default), `topk:K` or `scores`; a campaign whose threat model uses scores needs them. */
  output?: string;
}

/**
 * Labels (count indices or class names) or scores (count × classes, flat or one list per image). Labels
 * and flat scores of a one-class model cannot be told apart; such a model has nothing to attack.
 */
export type TargetAnswer = Int32Array | Float32Array | readonly number[] | readonly string[] | readonly (readonly number[])[];

/** What a target module exports (named exports, or a default export holding both). */
export interface TargetModule {
  info: TargetModuleInfo;
  predict(images: Float32Array, count: number): TargetAnswer | Promise<TargetAnswer>;
}

const positiveInt = z.number().int().min(1);
const infoSchema = z
  .strictObject({
    inputShape: z.tuple([positiveInt, positiveInt, positiveInt]),
    classes: positiveInt,
    classNames: z.array(z.string()).optional(),
    range: z.union([z.tuple([z.literal(0), z.literal(1)]), z.tuple([z.literal(0), z.literal(255)])]).default([0, 1]),
    maxBatch: positiveInt.default(64),
    output: outputSchema.default('label'),
  })
  .refine((i) => i.classNames === undefined || i.classNames.length === i.classes, { message: 'classNames must name every class', path: ['classNames'] });

export type LoadedTargetModule = { file: string; info: z.infer<typeof infoSchema>; predict: TargetModule['predict'] };

/** Import the user's module and check what it exports; every problem names the file. */
export async function loadTargetModule(file: string): Promise<LoadedTargetModule> {
  const full = resolve(file);
  if (!existsSync(full)) throw new TransferlabError('target_module_missing', `target module not found: ${file}`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(full).href)) as Record<string, unknown>;
  } catch (e) {
    throw new TransferlabError('target_module_failed', `cannot load target module ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const def = mod.default;
  const exports = mod.info === undefined && def !== null && typeof def === 'object' ? (def as Record<string, unknown>) : mod;
  if (exports.info === undefined) throw new TransferlabError('invalid_config', `target module ${file} exports no info ({ inputShape, classes, range?, maxBatch? })`);
  if (typeof exports.predict !== 'function') throw new TransferlabError('invalid_config', `target module ${file} exports no predict(images, count) function`);
  const info = parseSettings(infoSchema, exports.info, `info of target module ${file}`);
  return { file, info, predict: exports.predict as TargetModule['predict'] };
}

/** The images as the module takes them: the quantised bytes over 255, or the bytes themselves for range [0, 255]. */
export function moduleImages(bytes: Uint8Array, range: readonly [number, number]): Float32Array {
  return range[1] === 255 ? Float32Array.from(bytes) : Float32Array.from(bytes, (b) => b / 255);
}

const bad = (file: string, message: string) => new TransferlabError('victim_bad_response', `target module ${file}: predict() ${message}`, 502);

/** Each image's label (and scores) from what `predict` returned. */
export function readModuleAnswer(file: string, answer: unknown, count: number, space: ClassSpace): OneAnswer[] {
  const isList = Array.isArray(answer) || answer instanceof Int32Array || answer instanceof Float32Array;
  if (!isList) throw bad(file, `returned ${typeof answer}, not a list of labels or scores`);
  const items = Array.from(answer as ArrayLike<unknown>);
  const wrap = (fn: () => OneAnswer[]) => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof TransferlabError) throw new TransferlabError('victim_bad_response', `target module ${file}: predict()'s answer: ${e.message}`, 502);
      throw e;
    }
  };
  if (items.length === count && items.every((v) => Array.isArray(v))) {
    return wrap(() =>
      (items as number[][]).map((s) => {
        if (s.length !== space.classes) throw new TransferlabError('victim_bad_response', `${s.length} scores for an image of a ${space.classes}-class model`);
        const scores = Float32Array.from(s);
        return { label: argmax(scores), scores };
      }),
    );
  }
  if (items.length === count) return wrap(() => items.map((l) => ({ label: classIndex(l, space) })));
  if (items.length === count * space.classes && items.every((v) => typeof v === 'number')) {
    const flat = Float32Array.from(items as number[]);
    return Array.from({ length: count }, (_, i) => {
      const scores = flat.slice(i * space.classes, (i + 1) * space.classes);
      return { label: argmax(scores), scores };
    });
  }
  throw bad(file, `returned ${items.length} values for ${count} images: expected ${count} labels or ${count}×${space.classes} scores`);
}

/** The module as a target: its info (checked when described), and `predict` called on each batch. */
export const moduleTarget: TargetFactory = (settings, ctx) => {
  requireUint8(ctx.format, 'module');
  if (!settings.targetFile) throw new TransferlabError('invalid_config', 'the module target needs --target-file FILE (a .ts or .js file exporting info and predict; see docs/targets.md)');
  const file = settings.targetFile;
  let loaded: { mod: LoadedTargetModule; info: VictimInfo } | undefined;
  return {
    kind: 'module',
    url: pathToFileURL(resolve(file)).href,
    async describe() {
      const mod = await loadTargetModule(file);
      const info = describedModel(`module (${file})`, mod.info, Math.min(mod.info.maxBatch, settings.maxBatch ?? Infinity), mod.info.output);
      loaded = { mod, info };
      return info;
    },
    async send(body, count) {
      if (!loaded) throw new TransferlabError('oracle_failed', 'module target: send() before describe()', 500);
      const { mod, info } = loaded;
      let answer: unknown;
      try {
        answer = await mod.predict(moduleImages(body, mod.info.range), count);
      } catch (e) {
        if (e instanceof TransferlabError) throw e;
        // Whatever the module's SDK threw stops the run, named; nothing of the batch is cached or counted.
        throw new TransferlabError('target_module_failed', `target module ${file}: predict() threw: ${e instanceof Error ? e.message : String(e)}`, 502);
      }
      return batchAnswer(readModuleAnswer(file, answer, count, { classes: info.classes, classNames: info.classNames }), info.classes);
    },
    close: () => undefined,
  };
};
