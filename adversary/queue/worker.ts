import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { nodeLoader, ownModulePath } from '../../shared/entry.js';
import { TransferlabError } from '../../shared/errors.js';
import { compareRows, readRun } from '../report/compare.js';
import type { JobMessage, JobSpec } from './job.js';
import { QUEUE_NAME, connectionFor, type CampaignJob, type CampaignJobResult } from './queue.js';

/**
 * `adversary worker`: take campaigns off the queue and run each in its own process
 * (adversary/queue/job.ts), reporting rounds as the job's progress and the run's key figures as
 * its result. Any number of workers on any machines that reach Redis, the victim and the shared
 * runs folder.
 *
 * Failure handling is BullMQ's: a job whose campaign fails is retried with the backoff it was
 * queued with, then reported failed with the campaign's error; a worker that dies holds its
 * jobs' locks only until they expire (lockDuration), after which another worker's stalled-job
 * check hands them out again and the campaign resumes from its run folder — the answer cache
 * there, and the victim's Idempotency-Key replay for a batch in flight, mean nothing is paid twice.
 */
export interface WorkerOptions {
  queue: string;
  runs: string;
  concurrency: number;
  /** How long a job's lock lasts without renewal; a dead worker's job is recovered after about this long. */
  lockSeconds: number;
  backend?: string;
  log: (line: string) => void;
}

const JOB_ENTRY = ownModulePath('./job.js', import.meta.url);
/** Codes that no retry can fix: the job fails at once. */
const PERMANENT = new Set(['invalid_config', 'config_missing', 'run_exists', 'victim_mismatch']);

/** The run folder of a job, which must stay inside the shared runs folder. */
export function runFolder(runs: string, job: CampaignJob): string {
  const dir = resolve(runs, job.runDir);
  const rel = relative(resolve(runs), dir);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new UnrecoverableError(`job ${job.sweep}/${job.name}: run folder ${job.runDir} is outside the runs folder`);
  }
  return dir;
}

function resultOf(dir: string): CampaignJobResult {
  return compareRows([dir], [readRun(dir)]).rows[0];
}

/** Run one job's campaign in a child process; resolves with its key figures. */
function runJob(job: Job<CampaignJob, CampaignJobResult>, opts: WorkerOptions, signal?: AbortSignal): Promise<CampaignJobResult> {
  const out = runFolder(opts.runs, job.data);
  // Finished before (e.g. the worker died between the campaign's end and the job's completion).
  if (existsSync(join(out, 'results.json'))) return Promise.resolve(resultOf(out));
  const spec: JobSpec = { config: job.data.config, out, ...(opts.backend ? { backend: opts.backend } : {}) };
  const child = spawn(process.execPath, [...nodeLoader(import.meta.url), JOB_ENTRY, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, TRANSFERLAB_QUIET: '1' },
  });
  const tag = `[${job.id}]`;
  opts.log(`${tag} started (attempt ${job.attemptsMade + 1}, campaign pid ${child.pid}) → ${out}`);
  let tail = '';
  const lines = (chunk: Buffer) => {
    const text = chunk.toString();
    tail = (tail + text).slice(-2000);
    for (const l of text.split('\n')) if (l.trim()) opts.log(`${tag} ${l}`);
  };
  child.stdout?.on('data', lines);
  child.stderr?.on('data', lines);
  let failure: { code: string; message: string } | undefined;
  child.on('message', (m: JobMessage) => {
    if (m.type === 'progress') {
      const { type: _t, ...progress } = m;
      job.updateProgress(progress).catch((e: Error) => opts.log(`${tag} progress not recorded: ${e.message}`));
    } else if (m.type === 'error') failure = { code: m.code, message: m.message };
  });
  const abort = () => {
    opts.log(`${tag} lost its lock on the job (${String(signal?.reason ?? 'cancelled')}): stopping the campaign`);
    child.kill('SIGKILL');
  };
  signal?.addEventListener('abort', abort, { once: true });
  return new Promise((done, fail) => {
    child.once('error', (e) => fail(new Error(`cannot start the campaign process: ${e.message}`)));
    child.once('exit', (code, sig) => {
      signal?.removeEventListener('abort', abort);
      if (code === 0 && existsSync(join(out, 'results.json'))) {
        const result = resultOf(out);
        opts.log(`${tag} finished: ${result.attackQueries} attack + ${result.measurementQueries} measurement queries`);
        return done(result);
      }
      const why = failure ? `${failure.code}: ${failure.message}` : `the campaign process exited (${sig ?? `code ${code}`}): ${tail.trim().split('\n').slice(-3).join(' | ')}`;
      opts.log(`${tag} failed: ${why.split('\n')[0]}`);
      fail(failure && PERMANENT.has(failure.code) ? new UnrecoverableError(why) : new Error(why));
    });
  });
}

export function startWorker(opts: WorkerOptions): Worker<CampaignJob, CampaignJobResult> {
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1 || opts.concurrency > 64) {
    throw new TransferlabError('invalid_arguments', `--concurrency must be an integer in 1..64 (got ${opts.concurrency})`);
  }
  if (!(opts.lockSeconds >= 1 && opts.lockSeconds <= 3600)) {
    throw new TransferlabError('invalid_arguments', `--lock-seconds must be in 1..3600 (got ${opts.lockSeconds})`);
  }
  const { shown, ...connection } = connectionFor(opts.queue);
  const lockDuration = Math.round(opts.lockSeconds * 1000);
  const worker = new Worker<CampaignJob, CampaignJobResult>(QUEUE_NAME, (job, _token, signal) => runJob(job, opts, signal), {
    connection,
    concurrency: opts.concurrency,
    // The lock is renewed every lockDuration/2 by this process, whose event loop the campaign
    // never blocks; a stalled check every lockDuration/2 recovers a dead worker's job soon after
    // its lock expires. A job may stall twice (two dead workers) before it is failed.
    lockDuration,
    stalledInterval: Math.max(500, Math.round(lockDuration / 2)),
    maxStalledCount: 2,
    autorun: false,
  });
  // A lock this worker failed to renew now belongs to nobody (or to another worker): stop the
  // campaign rather than run it twice on the same run folder.
  worker.on('lockRenewalFailed', (ids: string[]) => ids.forEach((id) => worker.cancelJob(id, 'lock renewal failed')));
  worker.on('error', (e) => opts.log(`worker: ${e.message}`));
  opts.log(`worker on ${shown}, queue ${QUEUE_NAME}, concurrency ${opts.concurrency}, lock ${opts.lockSeconds} s, runs ${resolve(opts.runs)}`);
  return worker;
}
