/**
 * What the torchserve, http and module targets share: a model description from what the user says
 * (--input-shape, --classes, --class-names) where the server says nothing, a batch's answers as the
 * oracle core takes them, and errors that name where an answer came from.
 */
import { TransferlabError } from '../../shared/errors.js';
import type { PixelFormat } from '../oracle/core.js';
import type { BatchAnswer, VictimInfo } from './target.js';
import type { OneAnswer } from './torchserve-answer.js';

export interface ModelDescription {
  inputShape?: [number, number, number];
  classes?: number;
  classNames?: readonly string[];
}

/** A description complete enough to attack: shape and class count, from wherever they came. */
export function describedModel(who: string, d: ModelDescription, maxBatch: number, output: VictimInfo['output'] = 'label'): VictimInfo {
  if (!d.inputShape) throw new TransferlabError('target_bad_shape', `the ${who} target does not describe its input: give --input-shape H,W,C`);
  const classes = d.classes ?? d.classNames?.length;
  if (classes === undefined) throw new TransferlabError('target_bad_shape', `the ${who} target does not say how many classes it has: give --classes N (or --class-names)`);
  if (classes < 2) throw new TransferlabError('target_bad_shape', `the ${who} target needs at least 2 classes, got ${classes}`);
  if (d.classNames && d.classNames.length !== classes) {
    throw new TransferlabError('target_bad_shape', `the ${who} target has ${classes} classes but ${d.classNames.length} class names`);
  }
  return { dataset: null, inputShape: d.inputShape, classes, ...(d.classNames ? { classNames: [...d.classNames] } : {}), inputRange: [0, 1], maxBatch, output };
}

/** A batch's labels, and its scores when every answer gave them (the oracle drops them in a label-only campaign). */
export function batchAnswer(answers: OneAnswer[], classes: number, http?: number, attempts?: number): BatchAnswer {
  const labels = Int32Array.from(answers, (a) => a.label);
  if (answers.some((a) => a.scores === undefined)) return { labels, http, attempts };
  const scores = new Float32Array(answers.length * classes);
  answers.forEach((a, i) => scores.set(a.scores as Float32Array, i * classes));
  return { labels, scores, http, attempts };
}

/** `fn`'s answer; an error reading it says which target and URL it came from. */
export function named<T>(who: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TransferlabError) throw new TransferlabError(e.code, `${who}: ${e.message}`, e.status);
    throw e;
  }
}

/** PNG files and 8-bit lists hold the bytes a client quantised: these targets send uint8 only. */
export function requireUint8(format: PixelFormat, who: string): void {
  if (format !== 'uint8') throw new TransferlabError('invalid_config', `the ${who} target sends 8-bit pixels; --format float32 is for the transferlab target`);
}
