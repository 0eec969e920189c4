/**
 * The oracle of a target: the target's description read (free) and checked against the campaign's
 * threat model before any paid query, then the oracle core over the target's send. In a label threat
 * (the default) the answers' scores are dropped right here, so nothing but the top-1 label reaches the
 * attack code, the answer cache or the run folder; in a topk or scores threat they are kept, cached
 * with the label, and the oracle gains scores().
 */
import { TransferlabError } from '../../shared/errors.js';
import { parseOutputPolicy, threatProblem, type Threat } from '../../shared/protocol/output.js';
import { runIdentity } from '../oracle/answer-cache.js';
import { normaliseUrl, type KeyOrder } from '../oracle/client.js';
import { buildOracle, type CountingOracle, type PixelFormat, type SendBatch } from '../oracle/core.js';
import type { RetryPolicy } from '../oracle/retry.js';
import { LIMIT_KEYS, type OracleLimits } from '../oracle/limits.js';
import { loadDataset } from '../../shared/datasets/index.js';
import { runStore, type RunStore } from '../run/store.js';
import { targetFactory } from './registry.js';
import { targetSettingsOf, type TargetSettings, type TargetSettingsInput } from './settings.js';
import type { Target } from './target.js';

export interface TargetOracle extends CountingOracle {
  readonly threat: Threat;
  readonly target: Target;
}

export interface TargetOracleOptions extends RetryPolicy {
  url: string;
  /** Kind and options; unset keys take their defaults (transferlab). */
  target?: TargetSettingsInput;
  apiKey?: string;
  format?: PixelFormat;
  /** What the campaign may use of each answer (default label). */
  threat?: Threat;
  /** The run's store (answers.jsonl, queries.jsonl, oracle-id); none: in memory. */
  store?: RunStore;
  timeoutMs?: number;
  /** The client's own budget and pace (--budget, --concurrency, --rps); the target's settings' when not given. */
  limits?: OracleLimits;
  /** The attacker's --dataset: its shape and class count stand in where the server cannot say them (torchserve, http). */
  dataset?: string;
  /** Sybil: the requests spread over these keys instead of apiKey (transferlab targets only), in turn or at random. */
  apiKeys?: readonly string[];
  keyOrder?: KeyOrder;
  /** Most images per request (default and ceiling: the target's maxBatch). */
  requestSize?: number;
  /**
   * A 403 query_rejected answers the batch's images as REJECTED (oracle/core.ts) instead of stopping the
   * run; and with Sybil keys a key blocked (403 extraction_suspected) is dropped, the request going to the next.
   */
  rejectAsAnswer?: boolean;
}

/** Kinds whose send() says which key carried each batch, so requests can be spread over Sybil keys. */
const SYBIL_KINDS = new Set(['transferlab']);

/** Kinds that cannot say what their answers carry before one is paid for: --target-output says it. */
const DECLARED_OUTPUT = new Set(['torchserve']);

/** Where each kind's output comes from, for a refusal that says how to change it. */
const OUTPUT_SOURCE: Record<string, string> = {
  torchserve: 'its handler\'s answer is declared by --target-output (label unless given)',
  http: 'the target file\'s answer.labels gives labels, answer.scores scores',
  module: 'the module\'s info.output says it (label unless given)',
};

/** The fewest classes any row of an answer gives a score for (NaN: not given). */
function fewestGiven(scores: Float32Array, count: number, classes: number): number {
  let fewest = classes;
  for (let n = 0; n < count; n++) {
    let given = 0;
    for (let c = 0; c < classes; c++) if (!Number.isNaN(scores[n * classes + c])) given++;
    fewest = Math.min(fewest, given);
  }
  return fewest;
}

/** Kinds whose servers have no metadata route: the attacker's dataset is the last word on shape and classes. */
const UNDESCRIBED = new Set(['torchserve', 'http']);

/** The target settings with --input-shape and --classes from the attacker's dataset, where the user gave neither. */
export function withDatasetShape(t: TargetSettingsInput, dataset: string | undefined): TargetSettingsInput {
  if (dataset === undefined || !UNDESCRIBED.has(t.target ?? '') || (t.inputShape !== undefined && (t.classes !== undefined || t.classNames !== undefined))) return t;
  const ds = loadDataset(dataset);
  return { ...t, inputShape: t.inputShape ?? ds.shape.join(','), ...(t.classes === undefined && t.classNames === undefined ? { classes: ds.classes } : {}) };
}

export async function createTargetOracle(opts: TargetOracleOptions): Promise<TargetOracle> {
  const url = normaliseUrl(opts.url);
  const settings: TargetSettings = targetSettingsOf(withDatasetShape(opts.target ?? {}, opts.dataset));
  const threat = opts.threat ?? 'label';
  const format = opts.format ?? 'uint8';
  const scope = runIdentity(opts.store);
  if (opts.apiKeys?.length && !SYBIL_KINDS.has(settings.target)) {
    throw new TransferlabError('invalid_config', `Sybil keys (--keys-file) are not supported by the ${settings.target} target: only ${[...SYBIL_KINDS].join(', ')} spreads requests over several keys; give one --api-key`);
  }
  if (settings.targetOutput !== undefined && !DECLARED_OUTPUT.has(settings.target)) {
    throw new TransferlabError('invalid_config', `--target-output applies to ${[...DECLARED_OUTPUT].join(', ')} only: the ${settings.target} target says what its answers carry itself${OUTPUT_SOURCE[settings.target] ? ` (${OUTPUT_SOURCE[settings.target]})` : ' (its metadata)'}`);
  }
  const target = targetFactory(settings.target)(settings, {
    url, apiKey: opts.apiKey, apiKeys: opts.apiKeys, keyOrder: opts.keyOrder, format, scope, threat,
    // A run that reads refusals as answers (query-attack) also carries on past a blocked Sybil key.
    retireBlockedKeys: opts.rejectAsAnswer,
    retries: opts.retries, onRetry: opts.onRetry, random: opts.random, timeoutMs: opts.timeoutMs,
  });
  try {
    const info = await target.describe();
    const problem = threatProblem(threat, parseOutputPolicy(info.output), info.classes);
    const source = OUTPUT_SOURCE[target.kind] ? ` (${OUTPUT_SOURCE[target.kind]})` : '';
    if (problem) throw new TransferlabError('threat_unavailable', `${target.kind} target at ${url}: ${problem}${source}; nothing was sent`);
    const keepScores = threat !== 'label';
    // The label-only reduction: whatever the endpoint gave, only the labels go on. With scores kept, an
    // answer giving less than the threat model needs (fewer classes than declared, or none) goes on
    // without them, saying why: the core keeps its labels as paid and stops the run (oracle/core.ts).
    const send: SendBatch = async (body, count, purpose) => {
      const { scores, noScores, ...rest } = await target.send(body, count, purpose);
      if (!keepScores) return rest;
      if (!scores) return { ...rest, noScores: noScores ?? `${target.kind} target at ${url}: the answer carried labels only, though it described its output as "${info.output}"${source}` };
      const given = fewestGiven(scores, count, info.classes);
      const short = threatProblem(threat, parseOutputPolicy(given >= info.classes ? 'scores' : given > 0 ? `topk:${given}` : 'label'), info.classes);
      if (short) return { ...rest, noScores: `${target.kind} target at ${url}: an answer gave scores for ${given} of ${info.classes} classes, though it described its output as "${info.output}"${source}` };
      return { ...rest, scores };
    };
    const limits = opts.limits ?? Object.fromEntries(LIMIT_KEYS.map((k) => [k, settings[k]]));
    const oracle = buildOracle({
      info, format, send, store: opts.store, scores: keepScores, limits,
      readBudget: async () => (target.budget ? target.budget() : null),
      onClose: () => target.close(),
      requestSize: opts.requestSize,
      rejectAsAnswer: opts.rejectAsAnswer,
      keys: target.keys,
    });
    return Object.assign(oracle, { threat, target });
  } catch (e) {
    await target.close();
    throw e;
  }
}

/** The settings of a command that talks to a victim: its URL, key, format and target keys. */
export type RunTargetSettings = { victim: string; apiKey?: string; format?: PixelFormat; threat?: Threat; dataset?: string } & TargetSettingsInput &
  Pick<TargetOracleOptions, 'apiKeys' | 'keyOrder' | 'requestSize' | 'rejectAsAnswer' | 'random'>;

/** The oracle of a command-line run: its answers cached in the run's store, retries reported on stderr. */
export function createRunOracle(run: RunTargetSettings, out: RunStore | string): Promise<TargetOracle> {
  return createTargetOracle({
    url: run.victim,
    apiKey: run.apiKey,
    format: run.format,
    threat: run.threat,
    target: run,
    dataset: run.dataset,
    apiKeys: run.apiKeys,
    keyOrder: run.keyOrder,
    requestSize: run.requestSize,
    rejectAsAnswer: run.rejectAsAnswer,
    random: run.random,
    store: runStore(out),
    onRetry: (i) => console.error(`victim: ${i.reason}; retry ${i.attempt} in ${Math.round(i.delayMs)} ms`),
  });
}
