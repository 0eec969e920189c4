import { basename, extname, join, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { API_KEY_ENV, apiKeyOption, backendOption, HELP } from '../../shared/cli-options.js';
import { TransferlabError } from '../../shared/errors.js';
import { compareRuns, formatTable } from '../report/compare.js';
import { readConfigFile, type CampaignInput } from '../campaign/config.js';
import type { CampaignJob, JobStatus } from './queue.js';
import { RETRY_DEFAULTS, isSettled, type RetryPolicy } from './policy.js';
import type { JobProgress } from './job.js';

/**
 * The adversary's `sweep`, `sweep status` and `worker` commands, and the enqueue-and-report path
 * the scripted experiments share (scripts/experiment-lib.ts).
 */
export const queueFlags = {
  queue: { type: 'string', describe: 'Redis URL of the job queue, redis://HOST:PORT/DB' },
  runs: { type: 'string', default: 'runs', describe: 'folder holding every run folder; workers and `sweep status` must see the same one (a shared filesystem across machines)' },
  wait: { type: 'boolean', default: false, describe: 'after enqueueing, wait until every campaign has finished or failed, then write the comparison' },
  attempts: { type: 'number', default: RETRY_DEFAULTS.attempts, describe: 'tries per campaign before it is reported failed' },
  'backoff-seconds': { type: 'number', default: RETRY_DEFAULTS.backoffSeconds, describe: 'wait before the first retry; doubles with each further one' },
} as const;

const counts = (rows: JobStatus[]) => {
  const c = { waiting: 0, active: 0, done: 0, failed: 0 };
  for (const r of rows) {
    if (r.state === 'completed') c.done++;
    else if (r.state === 'failed') c.failed++;
    else if (r.state === 'active') c.active++;
    else c.waiting++; // wait, delayed (a retry's backoff), prioritized
  }
  return c;
};

function progressText(p: unknown): string {
  const q = p as Partial<JobProgress> | null;
  return q && typeof q === 'object' && typeof q.round === 'number' ? `round ${q.round}/${q.rounds}, ${q.attackQueries} attack q` : '';
}

export function statusTable(rows: JobStatus[]): string {
  const c = counts(rows);
  const lines = [`${rows.length} campaign(s): ${c.waiting} waiting, ${c.active} active, ${c.done} done, ${c.failed} failed`];
  for (const r of rows) {
    const state = r.state === 'delayed' ? 'retrying' : r.state === 'completed' ? 'done' : r.state;
    const detail =
      r.state === 'completed' && r.result
        ? `${r.result.attackQueries} attack q, misclass ${r.result.misclassificationRate === null ? '—' : (100 * r.result.misclassificationRate).toFixed(1) + '%'} @ε ${r.result.epsilon}`
        : r.state === 'failed' || r.state === 'delayed'
          ? (r.error ?? '').split('\n')[0].slice(0, 160)
          : progressText(r.progress);
    lines.push(`  ${r.id.padEnd(40)} ${state.padEnd(9)} tries ${r.attemptsMade}  ${detail}`);
  }
  return lines.join('\n');
}

/** Print the status; once every campaign is settled, write the comparison of those that finished. */
export async function reportSweep(rows: JobStatus[], runs: string, sweep: string, log: (s: string) => void): Promise<boolean> {
  log(statusTable(rows));
  if (rows.length === 0 || !rows.every(isSettled)) return false;
  const done = rows.filter((r) => r.state === 'completed').map((r) => resolve(runs, r.runDir));
  if (done.length === 0) {
    log('no campaign finished: nothing to compare');
    return true;
  }
  const table = await compareRuns(done, join(runs, sweep, 'compare'));
  log(`\n${formatTable(table.rows)}\n\nwrote ${table.csvPath} and ${table.htmlPath}`);
  return true;
}

/** Queue the campaigns, say what happened, and (with --wait) follow them to the end. */
export async function enqueueAndReport(
  url: string,
  jobs: CampaignJob[],
  opts: { runs: string; wait: boolean; retry: RetryPolicy; log: (s: string) => void },
): Promise<number> {
  const { openQueue, enqueueCampaigns, waitForSweep } = await loadQueue();
  const queue = openQueue(url);
  try {
    const r = await enqueueCampaigns(queue, jobs, opts.retry);
    opts.log(`queued ${r.added.length} campaign(s)` + (r.kept.length ? `, ${r.kept.length} already queued or done` : '') + (r.retried.length ? `, ${r.retried.length} failed earlier and retried` : ''));
    const sweep = jobs[0].sweep;
    if (!opts.wait) {
      opts.log(`start workers with \`npm run adversary -- worker --queue ${url} --runs ${opts.runs}\`; follow with \`npm run adversary -- sweep status --queue ${url} --name ${sweep} --runs ${opts.runs}\``);
      return 0;
    }
    let last = '';
    const rows = await waitForSweep(url, queue, sweep, (rs) => {
      const line = statusTable(rs).split('\n')[0];
      if (line !== last) opts.log(line);
      last = line;
    });
    await reportSweep(rows, opts.runs, sweep, opts.log);
    return rows.some((x) => x.state === 'failed') ? 1 : 0;
  } finally {
    await queue.close();
  }
}

/** BullMQ (and ioredis) are loaded only by the commands that open a queue: the others start faster without them. */
const loadQueue = () => import('./queue.js');

const retryOf = (a: Record<string, unknown>): RetryPolicy => ({ attempts: Number(a.attempts), backoffSeconds: Number(a['backoff-seconds']) });

function requireQueue(a: Record<string, unknown>): string {
  if (typeof a.queue !== 'string' || a.queue === '') throw new TransferlabError('invalid_arguments', 'name the job queue: --queue redis://HOST:PORT/DB');
  return a.queue;
}

export function sweepCommands<T>(y: Argv<T>): Argv<T> {
  return y
    .command(
      'sweep [configs..]',
      'queue one campaign per config file on Redis (BullMQ); `sweep status` shows them',
      (c) =>
        c
          .positional('configs', { type: 'string', array: true, describe: 'campaign config files (YAML/JSON), or the word status' })
          .options({
            ...queueFlags,
            name: { type: 'string', describe: 'the sweep\'s name: its run folders go to RUNS/NAME/<config name> [default: sweep; `sweep status` without it shows every sweep]' },
            victim: { type: 'string', describe: `${HELP.victim} for every campaign (overrides the files; every worker must reach it)` },
          })
          .example('$0 sweep scripts/configs/strongest.yaml scripts/configs/strongest-2400.yaml --queue redis://10.0.0.5:6379/0 --runs /mnt/shared/runs', 'queue two campaigns')
          .example('$0 sweep status --queue redis://10.0.0.5:6379/0 --runs /mnt/shared/runs', 'waiting/active/done/failed; the comparison once all are done'),
      async (a) => {
        const url = requireQueue(a);
        const configs = (a.configs ?? []) as string[];
        if (configs[0] === 'status') {
          if (configs.length > 1) throw new TransferlabError('invalid_arguments', '`sweep status` takes no config files');
          const { openQueue, sweepStatus } = await loadQueue();
          const queue = openQueue(url);
          try {
            const rows = await sweepStatus(queue, a.name);
            if (rows.length === 0) console.log(a.name ? `no campaigns of sweep ${a.name} on this queue` : 'no campaigns on this queue');
            for (const sweep of [...new Set(rows.map((r) => r.sweep))]) {
              if (!a.name) console.log(`\nsweep ${sweep}:`);
              await reportSweep(rows.filter((r) => r.sweep === sweep), a.runs, sweep, (s) => console.log(s));
            }
          } finally {
            await queue.close();
          }
          return;
        }
        if (configs.length === 0) throw new TransferlabError('invalid_arguments', 'name at least one campaign config file, or `sweep status`');
        const sweep = a.name ?? 'sweep';
        const jobs = configs.map((file): CampaignJob => {
          const config: CampaignInput = { ...readConfigFile(file), ...(a.victim ? { victim: a.victim } : {}) };
          const name = basename(file, extname(file));
          return { sweep, name, runDir: join(sweep, name), config };
        });
        await enqueueAndReport(url, jobs, { runs: a.runs, wait: a.wait, retry: retryOf(a), log: (s) => console.log(s) }).then((code) => {
          process.exitCode = code;
        });
      },
    )
    .command(
      'worker',
      'run queued campaigns (any number of workers, on any machine reaching Redis, the victim and --runs)',
      (c) =>
        c
          .options({
            queue: queueFlags.queue,
            runs: queueFlags.runs,
            concurrency: { type: 'number', default: 1, describe: 'campaigns run at once by this worker (each in its own process)' },
            'lock-seconds': { type: 'number', default: 30, describe: 'a job\'s lock lifetime: a killed worker\'s campaign is resumed elsewhere about this long after it died' },
            'api-key': { ...apiKeyOption, describe: `${apiKeyOption.describe}; used when a job names none` },
            backend: backendOption,
          })
          .example('$0 worker --queue redis://10.0.0.5:6379/0 --runs /mnt/shared/runs --concurrency 2', 'two campaigns at a time'),
      async (a) => {
        const url = requireQueue(a);
        // The campaigns run in child processes, which take a job's missing key from the environment.
        if (a['api-key']) process.env[API_KEY_ENV] = a['api-key'];
        const { startWorker } = await import('./worker.js');
        const worker = startWorker({ queue: url, runs: a.runs, concurrency: a.concurrency, lockSeconds: a['lock-seconds'], backend: a.backend, log: (s) => console.log(s) });
        await new Promise<void>((done) => {
          const stop = (signal: string) => {
            // Jobs in progress are left to the queue: their locks expire and another worker resumes them.
            console.log(`${signal}: stopping; campaigns in progress are resumed by another worker`);
            done();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          void worker.run().catch((e: Error) => {
            console.error(`worker stopped: ${e.message}`);
            done();
          });
        });
        await worker.close(true);
        process.exit(process.exitCode ?? 0);
      },
    );
}
