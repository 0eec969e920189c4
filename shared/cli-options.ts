/**
 * The arguments many commands share, each declared once here: the compute backend, the victim's URL,
 * the API key and its environment fallback, the seed, the run folder. Settings kept in a schema take
 * their help lines from here too (`.describe(HELP.…)`), so a flag reads the same in every command.
 */
import { BACKENDS } from './engine/backend.js';

/** The environment variable an API key falls back to when --api-key is not given. */
export const API_KEY_ENV = 'TRANSFERLAB_API_KEY';
/** The environment variable --backend falls back to (read by initBackend). */
export const BACKEND_ENV = 'TFJS_BACKEND';
export const DEFAULT_VICTIM_URL = 'http://127.0.0.1:8080';

/** Help lines of the shared settings. */
export const HELP = {
  victim: 'victim base URL',
  apiKey: `API key for the victim (env ${API_KEY_ENV}); never written to the run folder`,
  seed: 'seed of every random choice of the run: splits, initialisation, shuffles, targets, searches',
  out: 'run folder',
} as const;

/** --backend: which TF.js backend computes; unset, the environment's, else the best available. */
export const backendOption = {
  type: 'string',
  describe: `compute backend: ${BACKENDS.join(' | ')} (default: best available; env ${BACKEND_ENV})`,
} as const;

/** --api-key for commands whose settings have no schema (the key reaches them through the environment). */
export const apiKeyOption = { type: 'string', describe: HELP.apiKey } as const;

/** --victim for the orchestrators that otherwise start a victim of their own. */
export const runningVictimOption = (otherwise: string) => ({ type: 'string', describe: `URL of a running victim (default: ${otherwise})` }) as const;

/** The key given on the command line, else the environment's (never a default one). */
export function apiKeyOrEnv(given: unknown, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return typeof given === 'string' ? given : env[API_KEY_ENV];
}

/**
 * Settings that name no key at all take the environment's. A keys file (Sybil) is keys given: the
 * environment's key never joins it as a second one, which the settings would refuse (BOTH_KEYS).
 */
export function withEnvKey<T extends { apiKey?: string; keysFile?: string }>(settings: T, env: NodeJS.ProcessEnv = process.env): T {
  if (settings.apiKey !== undefined || settings.keysFile !== undefined || env[API_KEY_ENV] === undefined) return settings;
  return { ...settings, apiKey: env[API_KEY_ENV] };
}

/** One key and a keys file together: which would carry the requests is not left to a guess. */
export const BOTH_KEYS = 'apiKey (--api-key) and keysFile (--keys-file) are both given: give one API key, or a keys file of Sybil keys to spread the requests over, not both';
