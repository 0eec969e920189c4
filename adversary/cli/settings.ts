import { join } from 'node:path';
import type { Options } from 'yargs';
import { backendOption, HELP, withEnvKey } from '../../shared/cli-options.js';
import { inputFromFlags, schemaOptions } from '../../shared/schema-flags.js';
import { runStamp } from '../../shared/stamp.js';
import { campaignSchema, mergeConfig, readConfigFile, resolveConfig, substituteMembers, type CampaignConfig, type CampaignInput } from '../campaign/config.js';
import { readJson } from '../run/store.js';
import { sessionLimits } from '../oracle/limits.js';

/**
 * The campaign settings on the command line: every flag of `run` and `whitebox` comes from the
 * campaign schema (its type, default and help line), plus the few that are not settings.
 */
const shape = campaignSchema.shape;

/** `boundary` is a mapping: on the command line only --no-boundary (its `enabled`); a file sets the rest. */
const boundaryOption: Options = { type: 'boolean', describe: shape.boundary.description, defaultDescription: 'true' };

/** Flags of every campaign command that are not settings. */
const commandOptions = {
  config: { type: 'string', describe: 'YAML or JSON file with campaign settings (flags override it)' },
  backend: backendOption,
} as const;

/** `run`: every campaign setting, --config, --resume and --backend. */
export const runOptions: Record<string, Options> = {
  ...schemaOptions(shape),
  boundary: boundaryOption,
  ...commandOptions,
  resume: { type: 'string', describe: 'continue an interrupted run folder (its config.json is used)' },
};

/** `whitebox` reads the victim's files: no victim, no substitute, its own defaults where they differ. */
export const WHITEBOX_KEYS = [
  'dataset', 'seed', 'evalSize', 'epsilons', 'attack', 'steps', 'loss', 'diversity', 'diversityScale', 'diversitySamples',
  'craftTemperature', 'craftThreads', 'tiKernel', 'targetClass', 'out',
] as const satisfies readonly (keyof CampaignInput)[];
/** The seed paper's baseline is plain FGSM: TI stays off unless asked for. */
export const WHITEBOX_BASE: Partial<CampaignInput> = { tiKernel: 0 };

export const whiteboxOptions: Record<string, Options> = {
  model: { type: 'string', default: 'models/victim', describe: 'victim model folder (its metadata names the dataset; --dataset overrides it)' },
  ...schemaOptions(shape, { keys: WHITEBOX_KEYS, defaults: WHITEBOX_BASE, help: { out: `${HELP.out} (default: runs/<time>-whitebox-<attack>)` } }),
  ...commandOptions,
};

/** Parsed flags → campaign settings: only the flags given, so a config file's values hold. */
export function campaignFromFlags(argv: Readonly<Record<string, unknown>>): Partial<CampaignInput> {
  return { ...inputFromFlags(shape, argv), ...(argv.boundary === false ? { boundary: { enabled: false } } : {}) } as Partial<CampaignInput>;
}

/**
 * The settings of one invocation: a resumed run's own, else `base` under the file under the flags.
 * With `env`, settings naming no key (no apiKey, no keysFile) take its TRANSFERLAB_API_KEY.
 */
export function buildConfig(a: Readonly<Record<string, unknown>>, base: Partial<CampaignInput> = {}, env?: NodeJS.ProcessEnv): CampaignConfig {
  const flags = campaignFromFlags(a);
  const keyed = (input: CampaignInput) => (env ? withEnvKey(input, env) : input);
  if (a.resume) {
    const saved = readJson<CampaignInput>(join(String(a.resume), 'config.json'));
    // Only what belongs to this session, not to the run, may change on resuming.
    return resolveConfig(keyed({ ...saved, ...(flags.apiKey ? { apiKey: flags.apiKey } : {}), ...(flags.token ? { token: flags.token } : {}), ...(flags.allowPartial !== undefined ? { allowPartial: flags.allowPartial } : {}), ...sessionLimits(flags) }));
  }
  const file = a.config ? readConfigFile(String(a.config)) : {};
  return resolveConfig(keyed(mergeConfig({ ...base, ...file }, flags)));
}

export function defaultRunDir(c: CampaignConfig, kind = 'campaign'): string {
  const stamp = runStamp();
  return join('runs', `${stamp}-${kind === 'whitebox' ? 'whitebox' : substituteMembers(c).join('+')}-${c.attack}`);
}
