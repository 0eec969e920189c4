import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CampaignInput } from '../adversary/campaign/config.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { enqueueCampaigns, openQueue, sweepStatus, type CampaignJob, type JobStatus } from '../adversary/queue/queue.js';
import { processAlive } from '../shared/pid-lock.js';
import { NODE_TS, ROOT, type VictimProcess } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { startKeyedVictim } from './victim-client.js';
import { REDIS_SERVER, haveRedis, startRedis, type TestRedis } from '../scripts/redis-server.js';

/**
 * Sweeps on a real BullMQ queue: a private redis-server, a real victim process, two real worker
 * processes. One worker is SIGKILLed in the middle of a campaign; the queue's stalled-job recovery
 * must hand that campaign to the other worker, which resumes it from its run folder. Every
 * campaign then finishes exactly once, the victim's own count equals what the campaigns report
 * (nothing paid twice), and twin campaigns (same settings) give the same figures.
 */
// Twins use different keys so that each key's count can be held against its own three campaigns; the
// campaigns under one key pay separately even for identical batches (each run scopes its Idempotency-Key).
const KEYS = { a: { id: 'twin-a', key: 'k-twin-a-0123456789', budget: 1_000_000 }, b: { id: 'twin-b', key: 'k-twin-b-0123456789', budget: 1_000_000 } };
const SMALL: CampaignInput = {
  seedSize: 40,
  rounds: 3,
  epochs: 3,
  substitute: 'papernot-mlp',
  evalSize: 100,
  epsilons: [0.1, 0.3],
  boundary: { images: 10, maps: 1, grid: 5 },
};
const SWEEP = 'twins';
const NAMES = [3, 4, 5].flatMap((seed) => [`s${seed}a`, `s${seed}b`]);

let redis: TestRedis;
let victim: VictimProcess;
let dir: string;
const workers: { child: ChildProcess; log: string }[] = [];

function startWorker(): { child: ChildProcess; log: string } {
  const w = { child: undefined as unknown as ChildProcess, log: '' };
  w.child = spawn(NODE_TS[0], [...NODE_TS.slice(1), 'adversary/cli.ts', 'worker', '--queue', redis.url, '--runs', join(dir, 'runs'), '--lock-seconds', '3'], {
    cwd: ROOT,
    env: { ...process.env, TRANSFERLAB_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  w.child.stdout?.on('data', (c: Buffer) => (w.log += c.toString()));
  w.child.stderr?.on('data', (c: Buffer) => (w.log += c.toString()));
  workers.push(w);
  return w;
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${workers.map((w, i) => `--- worker ${i}\n${w.log.slice(-3000)}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The victim's own count for the key: one fresh image reports `budget.used` (that image included). */
async function victimCount(key: string): Promise<number> {
  const image = Array.from({ length: 784 }, (_, i) => ((i * 53) % 255) / 255);
  const res = await fetch(`${victim.url}/v1/label`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: [image] }),
  });
  return ((await res.json()) as { budget: { used: number } }).budget.used - 1;
}

beforeAll(async () => {
  if (!haveRedis) {
    console.warn(`skipped: no ${REDIS_SERVER} (Debian's redis-server; .ci/run installs it)`);
    return;
  }
  const model = await ensureTestVictim();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-sweep-'));
  redis = await startRedis();
  victim = await startKeyedVictim({ dir, model, keys: [KEYS.a, KEYS.b], rateLimit: 0, args: ['--log-level', 'warn'], timeoutMs: 120_000 });
});

afterAll(async () => {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await victim?.stop();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!haveRedis)('campaign sweeps on a Redis job queue', () => {
  it('survives a worker SIGKILLed mid-campaign: each campaign finishes once, nothing is paid twice', async () => {
    const queue = openQueue(redis.url);
    try {
      const jobs: CampaignJob[] = NAMES.map((name) => ({ sweep: SWEEP, name, runDir: join(SWEEP, name), config: { ...SMALL, seed: Number(name[1]), victim: victim.url, apiKey: KEYS[name[2] as 'a' | 'b'].key } }));
      const first = await enqueueCampaigns(queue, jobs, { attempts: 3, backoffSeconds: 1 });
      expect(first.added).toHaveLength(6);
      // Enqueueing the same sweep again adds nothing.
      expect((await enqueueCampaigns(queue, jobs, { attempts: 3, backoffSeconds: 1 })).kept).toHaveLength(6);
      // A campaign that can never succeed (the victim refuses its key): retried, then failed with the victim's error.
      const doomed: CampaignJob = { sweep: 'doomed', name: 'bad-key', runDir: 'doomed/bad-key', config: { ...SMALL, victim: victim.url, apiKey: 'k-not-a-real-key-0123' } };
      await enqueueCampaigns(queue, [doomed], { attempts: 2, backoffSeconds: 0.2 });

      const a = startWorker();
      const b = startWorker();
      // Kill whichever worker starts a campaign first, once that campaign has checkpointed a round.
      const [victimWorker, killedJob, campaignPid] = await until(
        'a worker to start a campaign',
        () => {
          for (const w of [a, b]) {
            const m = new RegExp(`\\[(${SWEEP}/s\\d[ab])\\] started \\(attempt \\d+, campaign pid (\\d+)\\)`).exec(w.log);
            if (m) return [w, m[1], Number(m[2])] as const;
          }
          return undefined;
        },
        90_000,
      );
      await until('the first checkpoint', () => (existsSync(join(dir, 'runs', killedJob, 'checkpoints', 'round-01', 'round.json')) ? true : undefined), 60_000);
      expect(existsSync(join(dir, 'runs', killedJob, 'results.json'))).toBe(false);
      victimWorker.child.kill('SIGKILL');
      // Its campaign process must not outlive it (two campaigns on one run folder could pay twice).
      await until('the dead worker\'s campaign to stop', () => (processAlive(campaignPid) ? undefined : true), 10_000);

      const rows = await until(
        'every campaign to finish',
        async () => {
          const rs = await sweepStatus(queue, SWEEP);
          return rs.length === 6 && rs.every((r) => r.state === 'completed') ? rs : undefined;
        },
        150_000,
      );
      const survivor = victimWorker === a ? b : a;
      expect(survivor.log).toContain(`[${killedJob}] resuming the run folder`);
      // Exactly once: one "finished" line per campaign across both workers' logs.
      const logs = a.log + b.log;
      for (const name of NAMES) expect(logs.split(`[${SWEEP}/${name}] finished:`).length - 1).toBe(1);

      const results = new Map(NAMES.map((n) => [n, JSON.parse(readFileSync(join(dir, 'runs', SWEEP, n, 'results.json'), 'utf8')) as CampaignResults]));
      for (const twin of ['a', 'b'] as const) {
        const paid = NAMES.filter((n) => n.endsWith(twin)).reduce((s, n) => s + results.get(n)!.queries.attack + results.get(n)!.queries.measurement, 0);
        expect(await victimCount(KEYS[twin].key)).toBe(paid);
      }
      // Each job's result is its run's key figures.
      for (const r of rows as JobStatus[]) expect(r.result?.attackQueries).toBe(results.get(r.name)?.queries.attack);
      // Twins — one of them possibly the killed-and-resumed one — agree figure for figure.
      for (const seed of [3, 4, 5]) {
        const [x, y] = [results.get(`s${seed}a`)!, results.get(`s${seed}b`)!];
        // (`cached` differs: a resumed campaign re-reads answers it paid for before from its cache.)
        expect([x.queries.attack, x.queries.measurement]).toEqual([y.queries.attack, y.queries.measurement]);
        expect(x.epsilons).toEqual(y.epsilons);
        expect(x.rounds.map((r) => ({ ...r, trainSeconds: 0, augmentSeconds: 0 }))).toEqual(y.rounds.map((r) => ({ ...r, trainSeconds: 0, augmentSeconds: 0 })));
        expect(x.boundary).toEqual(y.boundary);
      }

      const failed = await until(
        'the doomed campaign to fail for good',
        // (the state and the attempt count are read one after the other: wait for both)
        async () => (await sweepStatus(queue, 'doomed')).find((r) => r.state === 'failed' && r.attemptsMade >= 2),
        60_000,
      );
      expect(failed.attemptsMade, JSON.stringify(failed)).toBe(2);
      expect(failed.error).toMatch(/invalid_api_key/);
    } finally {
      await queue.close();
    }

    // `sweep status` reports the finished sweep and writes the comparison.
    const status = spawnSync(NODE_TS[0], [...NODE_TS.slice(1), 'adversary/cli.ts', 'sweep', 'status', '--queue', redis.url, '--name', SWEEP, '--runs', join(dir, 'runs')], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toContain('6 campaign(s): 0 waiting, 0 active, 6 done, 0 failed');
    const csv = readFileSync(join(dir, 'runs', SWEEP, 'compare', 'compare.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(7);
  }, 300_000); // about 45 s on an idle 2-core machine: seven campaign processes, one lock expiry
});
