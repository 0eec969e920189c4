import { withEnvKey } from '../../shared/cli-options.js';
import { TransferlabError } from '../../shared/errors.js';
import { createRunOracle } from '../targets/oracle.js';
import { readKeysFile } from '../oracle/client.js';
import { createRng } from '../../shared/random.js';
import { queryThreat } from './config.js';
import { resolveQueryAttackConfig, queryAttackSummary, runQueryAttackCampaign, type QueryAttackInput } from './run.js';
import { resumeHint } from '../run/resume-hint.js';
import { fileRunStore, getJson } from '../run/store.js';
import { sessionLimits } from '../oracle/limits.js';

/**
 * The CLI's side of `query-attack`: settings, the run folder, the victim connection, the summary.
 * Its flags: the settings given (only those: the schema fills the rest), and where the run goes.
 */
export type QueryAttackFlags = Partial<QueryAttackInput> & { resume?: string; out?: string };

/** With `env`, settings naming no key (no apiKey, no keysFile, a resumed run's included) take its TRANSFERLAB_API_KEY. */
export async function runQueryAttackCommand(flags: QueryAttackFlags, defaultOut: () => string, env?: NodeJS.ProcessEnv): Promise<number> {
  const resume = flags.resume !== undefined;
  const out = flags.resume ?? flags.out ?? defaultOut();
  const store = fileRunStore(out);
  let input: QueryAttackInput;
  if (resume) {
    if (!store.exists('config.json')) throw new TransferlabError('run_missing', `${out} is not a run folder (no config.json)`);
    const { kind, ...saved } = getJson<QueryAttackInput & { kind?: string }>(store, 'config.json');
    if (kind !== 'query-attack') throw new TransferlabError('run_mismatch', `${out} holds a ${kind ?? 'campaign'} run, not a query attack; resume it with its own command`);
    // The victim's URL may have moved since (a restarted victim on another port): a given --victim wins.
    input = { ...saved, ...(flags.victim ? { victim: flags.victim } : {}), ...(flags.apiKey ? { apiKey: flags.apiKey } : {}), ...(flags.token ? { token: flags.token } : {}), ...(flags.allowPartial !== undefined ? { allowPartial: flags.allowPartial } : {}), ...sessionLimits(flags) };
  } else {
    if (store.exists('results.json') || store.exists('config.json')) {
      throw new TransferlabError('run_exists', `${out} already holds a run; choose another --out or --resume it`);
    }
    const { resume: _r, out: _o, ...rest } = flags;
    input = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as QueryAttackInput;
  }
  const config = resolveQueryAttackConfig(env ? withEnvKey(input, env) : input);
  const oracle = await createRunOracle(
    {
      ...config,
      threat: queryThreat(config),
      ...(config.keysFile ? { apiKeys: readKeysFile(config.keysFile) } : {}),
      keyOrder: config.keyOrder,
      requestSize: config.requestSize,
      // A refused probe is an answer the attack sees (and counts as flagged), not the end of the run.
      rejectAsAnswer: true,
      random: createRng(config.seed ^ 0x5b1),
    },
    store,
  );
  try {
    const r = await runQueryAttackCampaign(config, store, oracle, (l) => console.log(l));
    console.log(`\n${queryAttackSummary(r)}`);
    console.log(
      `\nqueries: ${r.queries.attack} attack (${r.queries.cleanLabels} clean labels, ${r.queries.startingPool} starting pool, ` +
        `${r.queries.probes} probes this process), ${r.queries.cached} from the answer cache; median ${r.medianQueriesPerImage} per image; ` +
        `${r.durationSeconds.toFixed(1)} s`,
    );
    if (r.partial) console.log(`PARTIAL: the key's budget ran out after ${r.partial.measured} of ${r.partial.planned} images finished; figures are over those only. Continue with more budget: ${resumeHint('query-attack', out)}`);
    console.log(`results: ${store.where('results.json')}`);
    return 0;
  } catch (e) {
    if (e instanceof TransferlabError) {
      throw new TransferlabError(e.code, `${e.message}\nThe run folder ${out} keeps every answer paid for; continue with: ${resumeHint('query-attack', out)}`, e.status);
    }
    throw e;
  } finally {
    await oracle.close();
  }
}
