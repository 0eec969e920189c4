import { failOnOneLine } from '../shared/cli.js';
import { backendOption, runningVictimOption } from '../shared/cli-options.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { DATASET_HELP } from '../shared/datasets/index.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { targetSettingsShape, type TargetSettingsInput } from '../adversary/targets/settings.js';
import { inputFromFlags, schemaOptions } from '../shared/schema-flags.js';
import { runCampaignCommand } from '../adversary/commands.js';
import { compareRuns, formatTable } from '../adversary/report/compare.js';
import { enqueueAndReport, queueFlags } from '../adversary/queue/cli.js';
import { TransferlabError } from '../shared/errors.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';

/**
 * Shared driver of the scripted experiments: start (or reuse) a victim, run one campaign per
 * variant into its own run folder, then compare them all. A finished variant is skipped and an
 * interrupted one resumed, so re-running an experiment pays nothing twice. With --queue the
 * campaigns go to a Redis job queue instead, one job per variant, for `adversary worker`s to run.
 */
export interface Variant {
  name: string;
  settings: CampaignInput;
}

export async function runExperiment(title: string, argv: string[], variants: (quick: boolean) => Variant[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      victim: runningVictimOption('start one from --model'),
      model: { type: 'string', default: 'models/victim', describe: 'victim model folder when starting one' },
      out: { type: 'string', describe: `experiment folder (default runs/experiment-${title})` },
      quick: { type: 'boolean', default: false, describe: 'smaller campaigns for a fast look' },
      dataset: { type: 'string', describe: `the attacker's images: ${DATASET_HELP.replace(/^image dataset: /, '')}; default: the victim's` },
      backend: backendOption,
      // How the campaigns reach the victim: the same target flags as `run` (docs/targets.md).
      ...schemaOptions(targetSettingsShape),
      ...queueFlags,
      queue: { type: 'string', describe: 'enqueue the campaigns on this Redis job queue (redis://HOST:PORT/DB) instead of running them; needs --victim' },
    })
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  const sweep = `experiment-${title}${a.quick ? '-quick' : ''}`;
  const target = inputFromFlags(targetSettingsShape, a) as TargetSettingsInput;
  if (a.queue) {
    // Workers on other machines run the campaigns, so the victim must be one they can all reach.
    if (!a.victim) throw new TransferlabError('invalid_arguments', '--queue needs --victim URL: a victim every worker can reach');
    if (a.out) throw new TransferlabError('invalid_arguments', `with --queue the run folders go to --runs (here ${a.runs}/${sweep}/<variant>), not --out`);
    const jobs = variants(a.quick).map((v) => ({ sweep, name: v.name, runDir: join(sweep, v.name), config: { ...v.settings, ...target, victim: a.victim } }));
    return enqueueAndReport(a.queue, jobs, {
      runs: a.runs,
      wait: a.wait,
      retry: { attempts: a.attempts, backoffSeconds: a['backoff-seconds'] },
      log: (s) => console.log(s),
    });
  }
  const info = await initBackend(a.backend);
  const out = a.out ?? join(a.runs, sweep);
  console.log(`experiment ${title} on ${describeBackend(info)} → ${out}`);
  let victim: VictimProcess | undefined;
  const stop = () => victim?.child.kill('SIGTERM');
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    let url = a.victim;
    if (!url) {
      victim = await spawnVictim({ args: ['--model', a.model, '--port', '0', '--rate-limit', '100000'], stdio: 'inherit' });
      url = victim.url;
    }
    const dirs: string[] = [];
    for (const v of variants(a.quick)) {
      const dir = join(out, v.name);
      dirs.push(dir);
      if (existsSync(join(dir, 'results.json'))) {
        console.log(`\n== ${v.name}: already finished, kept ==`);
        continue;
      }
      console.log(`\n== ${v.name} ==`);
      const config = resolveConfig({ ...v.settings, ...target, ...(a.dataset ? { dataset: a.dataset } : {}), victim: url, out: dir });
      await runCampaignCommand(config, dir, existsSync(join(dir, 'config.json')));
    }
    const table = await compareRuns(dirs, join(out, 'compare'));
    console.log(`\n${formatTable(table.rows)}\n\nwrote ${table.csvPath} and ${table.htmlPath}`);
    return 0;
  } finally {
    await victim?.stop();
  }
}
