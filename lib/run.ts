import { runCampaign, type CampaignHooks } from '../adversary/campaign/campaign.js';
import type { RoundRecord } from '../adversary/campaign/checkpoints.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { readTransferResults, type CampaignResults } from '../adversary/campaign/results.js';
import { runWhitebox } from '../adversary/campaign/whitebox.js';
import { readKeysFile, type RetryInfo } from '../adversary/oracle/client.js';
import type { CountingOracle } from '../adversary/oracle/core.js';
import { queryThreat } from '../adversary/query/config.js';
import { resolveQueryAttackConfig, runQueryAttackCampaign, type QueryAttackInput, type QueryAttackResults } from '../adversary/query/run.js';
import { createTargetOracle, type RunTargetSettings } from '../adversary/targets/oracle.js';
import { writeReport } from '../adversary/report/report.js';
import { runStore, type RunStore } from '../adversary/run/store.js';
import { initBackend } from '../shared/engine/backend.js';
import { TransferlabError } from '../shared/errors.js';
import { createRng } from '../shared/random.js';

/**
 * The library's runs: each one what its command does (`transferlab attack`, `whitebox`, `query-attack`)
 * without the terminal — settings in, results out, progress through callbacks. The run goes to a folder
 * (a path) or to any RunStore (`memoryRunStore()` keeps it in memory).
 */
export interface RunOptions {
  /** The run folder or store: settings, answers paid for, checkpoints, results.json, report.html. */
  run: RunStore | string;
  /** Progress lines (what the command prints); default: none. */
  log?: (line: string) => void;
  /** A victim request being retried (network error, 5xx, 429). */
  onRetry?: (info: RetryInfo) => void;
  /** Compute backend (tensorflow, wasm, cpu); default: the one already started, else the best available. */
  backend?: string;
}

export interface CampaignOptions extends RunOptions {
  /** Each finished substitute round: its size, queries paid and agreement with the victim. */
  onRound?: (round: RoundRecord) => void;
  /** Each substitute training batch. */
  onBatchEnd?: CampaignHooks['onBatchEnd'];
  /** Continue a run the store already holds (its finished rounds and paid answers are kept). */
  resume?: boolean;
  /** Also write report.html (default true). */
  report?: boolean;
}

/**
 * The oracle a command would open for these settings (adversary/commands.ts, query/command.ts): the
 * target, the threat model, Sybil keys from the keys file and their order, the request size and the
 * client's limits all taken, none ignored; retries reported through `onRetry`.
 */
async function withOracle<R>(settings: RunTargetSettings & { keysFile?: string; seed: number }, store: RunStore, o: RunOptions, run: (oracle: CountingOracle) => Promise<R>): Promise<R> {
  await initBackend(o.backend);
  const oracle = await createTargetOracle({
    url: settings.victim, apiKey: settings.apiKey, format: settings.format, threat: settings.threat, target: settings, dataset: settings.dataset,
    ...(settings.keysFile ? { apiKeys: readKeysFile(settings.keysFile) } : {}), keyOrder: settings.keyOrder, requestSize: settings.requestSize,
    rejectAsAnswer: settings.rejectAsAnswer, random: createRng(settings.seed ^ 0x5b1), store, onRetry: o.onRetry,
  });
  try {
    return await run(oracle);
  } finally {
    await oracle.close();
  }
}

/** The black-box campaign against the victim at `settings.victim` (`transferlab attack`). */
export async function attack(settings: CampaignInput, options: CampaignOptions): Promise<{ results: CampaignResults; report?: string }> {
  const config = resolveConfig(settings);
  const store = runStore(options.run);
  if (options.resume && !store.exists('config.json')) throw new TransferlabError('run_missing', `${store.where('')} holds no run to resume (no config.json)`);
  if (!options.resume && store.exists('results.json')) throw new TransferlabError('run_exists', `${store.where('')} already holds a finished run`);
  const results = await withOracle(config, store, options, (oracle) =>
    runCampaign(config, store, oracle, { log: options.log ?? (() => {}), onRound: options.onRound, onBatchEnd: options.onBatchEnd }),
  );
  if (options.report === false) return { results };
  const whitebox = 'whitebox/results.json';
  return { results, report: await writeReport(store, results, store.exists(whitebox) ? { whitebox: readTransferResults(store, whitebox) } : undefined) };
}

/**
 * The white-box baseline (`transferlab whitebox`): the campaign's attacks crafted on the victim model
 * itself, read from `model` (a transferlab or TF.js layers folder; ONNX has no gradients to give).
 */
export async function whitebox(settings: CampaignInput, model: string, options: Omit<RunOptions, 'onRetry'> & { report?: boolean }): Promise<{ results: CampaignResults; report?: string }> {
  await initBackend(options.backend);
  const store = runStore(options.run);
  const results = await runWhitebox(resolveConfig(settings), model, store);
  return options.report === false ? { results } : { results, report: await writeReport(store, results) };
}

/** A decision-based query attack, RayS or HopSkipJump, on the victim itself (`transferlab query-attack`). */
export async function queryAttack(settings: QueryAttackInput, options: RunOptions): Promise<QueryAttackResults> {
  const config = resolveQueryAttackConfig(settings);
  const store = runStore(options.run);
  // As the command: a refused probe is an answer the attack counts (flagged), not the end of the run.
  return withOracle({ ...config, threat: queryThreat(config), rejectAsAnswer: true }, store, options, (oracle) => runQueryAttackCampaign(config, store, oracle, options.log ?? (() => {})));
}
