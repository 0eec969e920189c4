/**
 * transferlab as a library (`import { … } from 'transferlab'`): the functions its commands call, documented
 * in docs/library.md. A typical script: loadDataset / trainVictim (or a model folder you have), startVictim,
 * attack (or createHttpOracle + runCampaign for control over every step), then readRun / compareRuns.
 * Everything else under dist/ is internal and may change between versions.
 */

// Compute backend: started on first use by the functions below; call it first to choose one.
export { initBackend, describeBackend, BACKENDS, type BackendInfo, type BackendName } from '../shared/engine/backend.js';

// Datasets: built-in names (mnist, fashion-mnist), a folder of IDX files, or an ImageFolder tree of PNGs.
export { loadDataset, DEFAULT_DATASET, BUILTIN_NAMES, type Dataset, type ImageSet } from '../shared/datasets/index.js';

// Models: train a victim, load or inspect a saved one.
export { trainVictim, evaluateAccuracy, VICTIM_DEFAULTS, type VictimTrainConfig } from '../victim/train/train.js';
export { ARCHITECTURES } from '../shared/model/architectures.js';
export { loadModel, hasModel, readMetadata, type ModelMetadata } from '../shared/model/model-io.js';

// The victim: in this process, or as its own process (as the demo runs it).
export { startVictim, type VictimOptions, type RunningVictim } from './victim.js';
export { spawnVictim, type SpawnOptions, type VictimProcess } from '../victim/spawn.js';

// Oracles: what the adversary knows of a target. createTargetOracle joins here once targets land.
export { createHttpOracle, type HttpOracleOptions, type RetryInfo, type RetryOptions } from '../adversary/oracle/client.js';
export { paidCounts, type CountingOracle } from '../adversary/oracle/core.js';
export type { LabelOracle, QueryCounts, QueryPurpose, VictimInfo } from '../adversary/oracle/oracle.js';

// Runs: the commands' work with callbacks instead of a terminal, and the steps' own entry points.
export { attack, whitebox, queryAttack, type RunOptions, type CampaignOptions } from './run.js';
export { resolveConfig, readConfigFile, campaignSchema, type CampaignConfig, type CampaignInput } from '../adversary/campaign/config.js';
export { runCampaign, type CampaignHooks } from '../adversary/campaign/campaign.js';
export type { RoundRecord } from '../adversary/campaign/checkpoints.js';
export { runWhitebox } from '../adversary/campaign/whitebox.js';
export {
  runQueryAttackCampaign,
  resolveQueryAttackConfig,
  queryAttackSchema,
  type QueryAttackConfig,
  type QueryAttackInput,
  type QueryAttackResults,
} from '../adversary/query/run.js';
export { writeReport } from '../adversary/report/report.js';
export { fileRunStore, memoryRunStore, type RunStore } from '../adversary/run/store.js';

// Results: one versioned contract for every run (results.json), read and compared.
export { readResults, readTransferResults, type CampaignResults, type RunResults } from '../adversary/campaign/results.js';
export { readRun, compareRuns, type CompareResult, type CompareRow } from '../adversary/report/compare.js';

export { TransferlabError, isTransferlabError } from '../shared/errors.js';
