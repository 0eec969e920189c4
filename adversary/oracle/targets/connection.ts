/**
 * What a target gives the oracle core: the model's description, the wire format, and how one batch of
 * quantised images is sent and its labels read. Counting, the cache, the budget and the pace are the
 * core's (core.ts), the same for every target.
 */
import type { VictimInfo } from '../oracle.js';
import type { BatchAnswer, Budget, PixelFormat, SendBatch } from '../core.js';
import type { RetryInfo, RetryOptions } from '../client.js';
import type { OneAnswer } from './torchserve-answer.js';
import { TransferlabError } from '../../../shared/errors.js';

export interface TargetConnection {
  info: VictimInfo;
  format: PixelFormat;
  send: SendBatch;
  readBudget?: () => Promise<Budget | null>;
  close(): void | Promise<void>;
}

/** What the user tells of a model whose server does not describe it (--input-shape, --classes), or the attacker's dataset. */
export interface ModelDescription {
  inputShape?: [number, number, number];
  classes?: number;
  classNames?: string[];
}

export interface ConnectOptions extends ModelDescription {
  url: string;
  modelName?: string;
  modelVersion?: string;
  token?: string;
  /** Keep the scores an endpoint gives (a campaign whose threat model uses them); otherwise only the top-1 label leaves the adapter. */
  keepScores?: boolean;
  retries?: RetryOptions;
  onRetry?: (info: RetryInfo) => void;
  random?: () => number;
  timeoutMs?: number;
}

/** A description complete enough to attack: shape and class count, from wherever they came. */
export function describedModel(target: string, d: ModelDescription, maxBatch: number): VictimInfo {
  if (!d.inputShape) throw new TransferlabError('target_shape_unknown', `the ${target} target does not describe its input: give --input-shape H,W,C (or the attacker's --dataset)`);
  const classes = d.classes ?? d.classNames?.length;
  if (classes === undefined) throw new TransferlabError('target_shape_unknown', `the ${target} target does not say how many classes it has: give --classes N (or the attacker's --dataset)`);
  if (classes < 2) throw new TransferlabError('target_shape_unknown', `the ${target} target needs at least 2 classes, got ${classes}`);
  if (d.classNames && d.classNames.length !== classes) {
    throw new TransferlabError('target_shape_unknown', `the ${target} target has ${classes} classes but ${d.classNames.length} class names`);
  }
  return {
    dataset: null,
    inputShape: d.inputShape,
    classes,
    ...(d.classNames ? { classNames: d.classNames } : {}),
    inputRange: [0, 1],
    maxBatch,
    output: 'label',
  };
}

/** A batch's answers as the core takes them: labels, and the scores only when the threat model keeps them. */
export function batchAnswer(answers: OneAnswer[], classes: number, keepScores: boolean, http?: number, attempts?: number): BatchAnswer {
  const labels = Int32Array.from(answers, (a) => a.label);
  if (!keepScores || answers.some((a) => a.scores === undefined)) return { labels, http, attempts };
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
