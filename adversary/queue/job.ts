/**
 * One sweep job's campaign, in its own process, started by a sweep worker (adversary/queue/worker.ts).
 *
 * Why a process of its own: a campaign keeps the CPU busy for long stretches, and a worker whose
 * event loop is blocked cannot renew its lock on the job; the queue would then hand the job to a
 * second worker while the first is still running it. Here the worker's loop stays free, and the
 * campaign is the same code path as `adversary run` (or `run --resume` when the run folder holds
 * a started run), so a sweep's results equal the same campaigns run alone.
 *
 * The campaign must never outlive its worker: the worker talks to it over an IPC channel, and when
 * that channel closes (the worker exited or was SIGKILLed) the campaign exits at once. The job is
 * then recovered by the queue as stalled and resumed elsewhere from the run folder.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { withEnvKey } from '../../shared/cli-options.js';
import { describeBackend, initBackend } from '../../shared/engine/backend.js';
import { isTransferlabError } from '../../shared/errors.js';
import { runCampaignCommand } from '../commands.js';
import { resolveConfig, type CampaignInput } from '../campaign/config.js';

export interface JobProgress {
  round: number;
  rounds: number;
  attackQueries: number;
  agreement: number;
}

export type JobMessage = ({ type: 'progress' } & JobProgress) | { type: 'error'; code: string; message: string };

export interface JobSpec {
  config: CampaignInput;
  out: string;
  backend?: string;
}

const send = (m: JobMessage) => new Promise<void>((done) => (process.send ? process.send(m, () => done()) : done()));

/**
 * Exit as soon as the worker is gone. The IPC channel's 'disconnect' event alone is not enough:
 * training runs on promise continuations for minutes without giving the event loop a turn, so
 * the event could wait for the end of a round. A watchdog thread has its own event loop and
 * checks the parent pid every 250 ms.
 */
function dieWithParent(): void {
  const parent = process.ppid;
  const watchdog = new Worker(
    `const { workerData } = require('node:worker_threads');
     setInterval(() => { if (process.ppid !== workerData) process.kill(process.pid, 'SIGKILL'); }, 250);`,
    { eval: true, workerData: parent, execArgv: [] },
  );
  watchdog.unref();
  process.on('disconnect', () => {
    console.error('sweep job: the worker is gone; stopping so the job can be resumed elsewhere');
    process.exit(137);
  });
}

async function main(): Promise<void> {
  dieWithParent();
  const spec = JSON.parse(process.argv[2] ?? '{}') as JobSpec;
  try {
    const config = resolveConfig(withEnvKey({ ...spec.config, out: spec.out }));
    const info = await initBackend(spec.backend);
    console.log(`adversary on ${describeBackend(info)}`);
    const resume = existsSync(join(spec.out, 'config.json'));
    if (resume) console.log(`resuming the run folder ${spec.out}`);
    await runCampaignCommand(config, spec.out, resume, (r, rounds) =>
      void send({ type: 'progress', round: r.round, rounds, attackQueries: r.attackQueries, agreement: r.agreement }),
    );
    process.disconnect?.();
    // wasm pthread workers would keep the process alive; everything is on disk already.
    process.exit(0);
  } catch (e) {
    const code = isTransferlabError(e) ? e.code : 'campaign_failed';
    const message = e instanceof Error ? e.message : String(e);
    console.error(`error (${code}): ${message}`);
    await send({ type: 'error', code, message });
    process.exit(1);
  }
}

void main();
