import { Queue, QueueEvents, type Job, type JobState } from 'bullmq';
import { TransferlabError } from '../../shared/errors.js';
import { parseRedisUrl } from '../../shared/redis-url.js';
import { resolveConfig, type CampaignInput } from '../campaign/config.js';
import type { CompareRow } from '../report/compare.js';

/**
 * A sweep is a set of campaigns on a BullMQ queue in Redis. A job's data is the campaign's
 * config and its run folder (relative to the `--runs` folder every worker shares); its result
 * is the run's key figures (results.json's row of the comparison). The job id is the sweep's
 * name and the run's name, so enqueueing the same sweep again adds nothing that is already
 * queued, running or done, and BullMQ keeps finished jobs for `sweep status`.
 */
export const QUEUE_NAME = 'transferlab-campaigns';

export interface CampaignJob {
  sweep: string;
  name: string;
  /** The run folder, relative to the workers' --runs folder. */
  runDir: string;
  config: CampaignInput;
}

export type CampaignJobResult = CompareRow;

export { RETRY_DEFAULTS, isSettled, type RetryPolicy } from './policy.js';
import { isSettled, type RetryPolicy } from './policy.js';


/** BullMQ's connection options for a redis:// URL; commands wait for a reconnect instead of failing (workers must). */
export function connectionFor(url: string, flag = '--queue') {
  const address = parseRedisUrl(url, flag);
  return { url: address.url, maxRetriesPerRequest: null, shown: address.shown };
}

export function openQueue(url: string): Queue<CampaignJob, CampaignJobResult> {
  const { shown: _shown, ...connection } = connectionFor(url);
  return new Queue<CampaignJob, CampaignJobResult>(QUEUE_NAME, { connection });
}

/** Names safe in a job id and a folder name. */
const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function jobId(sweep: string, name: string): string {
  return `${sweep}/${name}`;
}

export interface Enqueued {
  added: string[];
  /** Already queued, running or finished: left alone. */
  kept: string[];
  /** Failed earlier: sent back to be retried. */
  retried: string[];
}

/**
 * Validate every campaign first (a bad config is refused before anything is queued), then add
 * the ones the queue does not hold yet; earlier failures are retried.
 */
export async function enqueueCampaigns(queue: Queue<CampaignJob, CampaignJobResult>, jobs: CampaignJob[], retry: RetryPolicy): Promise<Enqueued> {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const j of jobs) {
    if (!NAME_RULE.test(j.sweep)) problems.push(`sweep name ${JSON.stringify(j.sweep)}: use letters, digits, . _ - (at most 100)`);
    if (!NAME_RULE.test(j.name)) problems.push(`campaign name ${JSON.stringify(j.name)}: use letters, digits, . _ - (at most 100)`);
    if (seen.has(j.name)) problems.push(`two campaigns are named ${j.name}; rename one config file`);
    seen.add(j.name);
    try {
      resolveConfig(j.config);
    } catch (e) {
      problems.push(`${j.name}: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new TransferlabError('invalid_sweep', `nothing was queued:\n  - ${problems.join('\n  - ')}`);
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1 || retry.attempts > 100) {
    throw new TransferlabError('invalid_arguments', `--attempts must be an integer in 1..100 (got ${retry.attempts})`);
  }
  if (!(retry.backoffSeconds >= 0)) throw new TransferlabError('invalid_arguments', `--backoff-seconds must be ≥ 0 (got ${retry.backoffSeconds})`);
  const out: Enqueued = { added: [], kept: [], retried: [] };
  for (const j of jobs) {
    const id = jobId(j.sweep, j.name);
    const existing = await queue.getJob(id);
    if (existing) {
      if ((await existing.getState()) === 'failed') {
        await existing.retry('failed');
        out.retried.push(id);
      } else out.kept.push(id);
      continue;
    }
    await queue.add(j.name, j, {
      jobId: id,
      attempts: retry.attempts,
      backoff: { type: 'exponential', delay: Math.round(retry.backoffSeconds * 1000) },
      removeOnComplete: false,
      removeOnFail: false,
    });
    out.added.push(id);
  }
  return out;
}

export interface JobStatus {
  id: string;
  sweep: string;
  name: string;
  runDir: string;
  state: JobState | 'unknown';
  attemptsMade: number;
  progress: unknown;
  result?: CampaignJobResult;
  error?: string;
}

/** Every job of the queue (or of one sweep), in the order they were added. */
export async function sweepStatus(queue: Queue<CampaignJob, CampaignJobResult>, sweep?: string): Promise<JobStatus[]> {
  const jobs = (await queue.getJobs(['wait', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'], 0, -1, true)).filter(
    (j): j is Job<CampaignJob, CampaignJobResult> => j !== undefined && (sweep === undefined || j.data.sweep === sweep),
  );
  const rows: JobStatus[] = [];
  for (const listed of jobs) {
    const state = await listed.getState();
    // The listing may predate the job's finish: once its state says finished, read the job again, so
    // the row's result or error is the finished one (BullMQ writes both in the same step as the state).
    const j = state === 'completed' || state === 'failed' ? ((await queue.getJob(String(listed.id))) ?? listed) : listed;
    rows.push({
      id: String(j.id),
      sweep: j.data.sweep,
      name: j.data.name,
      runDir: j.data.runDir,
      state,
      attemptsMade: j.attemptsMade,
      progress: j.progress,
      ...(j.returnvalue ? { result: j.returnvalue } : {}),
      ...(j.failedReason ? { error: j.failedReason } : {}),
    });
  }
  return rows.sort((a, b) => a.id.localeCompare(b.id));
}


/**
 * Wait until every job of the sweep has completed or failed for good (retries exhausted),
 * reporting each change; QueueEvents delivers them, a periodic re-read covers anything missed
 * while disconnected.
 */
export async function waitForSweep(
  url: string,
  queue: Queue<CampaignJob, CampaignJobResult>,
  sweep: string,
  onChange: (rows: JobStatus[]) => void,
): Promise<JobStatus[]> {
  const { shown: _shown, ...connection } = connectionFor(url);
  const events = new QueueEvents(QUEUE_NAME, { connection });
  await events.waitUntilReady();
  let wake: () => void = () => {};
  const poke = () => wake();
  for (const e of ['completed', 'failed', 'progress', 'active', 'stalled', 'retries-exhausted'] as const) events.on(e, poke);
  try {
    for (;;) {
      const rows = await sweepStatus(queue, sweep);
      onChange(rows);
      if (rows.length > 0 && rows.every(isSettled)) return rows;
      await new Promise<void>((r) => {
        const t = setTimeout(r, 5000);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  } finally {
    await events.close();
  }
}
