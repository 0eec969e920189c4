/**
 * Load test of victim replicas, not part of `npm test`: labels/s, p50 and p99 for batches of 100
 * uint8 images from 8 concurrent clients against 1 replica on files, 1 on a Redis store, and N on
 * one Redis store (clients spread over the replicas in turn, as a round-robin load balancer would),
 * and how long the store's own operations take per request (reservation, charge, Idempotency-Key
 * claim and record) on the same Redis under the same load.
 *
 *   npx tsx scripts/replica-load.ts [--model DIR] [--replicas 3] [--requests 400] [--detector prada]
 *     [--setups files redis replicas store] [--json FILE]
 *
 * Starts its own redis-server (AOF, fsync always) on a free loopback port in a temporary folder.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { isMain, runMain } from '../shared/cli.js';
import { quantile } from '../shared/statistics.js';
import { answered, contractClient, type ContractClient } from '../shared/protocol/index.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { RedisIdempotencyStore } from '../victim/store/idempotency-redis.js';
import { RedisVictimStore } from '../victim/store/redis-store.js';
import { agentTransport } from './load-transport.js';
import { startRedis } from './redis-server.js';

const CLIENTS = 8;
const BATCH = 100;

export interface LoadCell {
  setup: string;
  replicas: number;
  requests: number;
  imagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** One label request with its own Idempotency-Key (which makes resending on a stale socket safe). */
async function post(client: ContractClient, bytes: Uint8Array): Promise<void> {
  answered('label', await client.label({ images: { format: 'uint8', bytes }, idempotencyKey: randomUUID() }));
}

async function measure(setup: string, urls: string[], pixels: Uint8Array, requests: number): Promise<LoadCell> {
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const transport = agentTransport(agent, { resendOnStaleSocket: true });
  const targets = urls.map((u) => contractClient(u, transport));
  const body = (i: number) => pixels.subarray(((i * BATCH) % 9000) * IMAGE_SIZE, ((i * BATCH) % 9000 + BATCH) * IMAGE_SIZE);
  // Warm-up: every replica's model and connections.
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => post(targets[c % targets.length], body(c))));
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = 0; next < requests; i++) {
        const n = next++;
        const t = performance.now();
        await post(targets[(c + i) % targets.length], body(n));
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return { setup, replicas: urls.length, requests, imagesPerSecond: Math.round((requests * BATCH) / seconds), p50Ms: quantile(latencies, 0.5) ?? NaN, p99Ms: quantile(latencies, 0.99) ?? NaN };
}

/** The store's work for one request (reserve, commit, idempotency claim + finish), 8 at a time. */
async function storeLatency(url: string, requests: number): Promise<{ p50Ms: number; p99Ms: number }> {
  const store = await RedisVictimStore.open(url);
  const idem = new RedisIdempotencyStore(store.redis);
  const who = { id: 'store-probe', limit: null };
  const labels = new Int32Array(BATCH);
  const times: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next++ < requests) {
        const t = performance.now();
        const claim = await idem.replayOrClaim(who.id, randomUUID(), 'x'.repeat(64));
        const r = await store.reserve(who, BATCH);
        // The charge and the Idempotency-Key record in one script, as the victim does.
        await ('ticket' in claim ? store.commitWithRecord(r, idem.recordFor(claim.ticket, labels)) : store.commit(r));
        times.push(performance.now() - t);
      }
    }),
  );
  await store.close();
  return { p50Ms: quantile(times, 0.5) ?? NaN, p99Ms: quantile(times, 0.99) ?? NaN };
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim', describe: 'victim model folder' },
      replicas: { type: 'number', default: 3, describe: 'replicas in the last setup' },
      requests: { type: 'number', default: 400, describe: 'timed requests (of 100 images) per setup' },
      detector: { type: 'string', array: true, default: ['none'], choices: ['none', 'prada', 'blacklight'], describe: 'extraction detectors on every victim (with the store: their state shared in Redis)' },
      setups: { type: 'string', array: true, default: ['files', 'redis', 'replicas', 'store'], choices: ['files', 'redis', 'replicas', 'store'], describe: 'which setups to measure: 1 replica on files, 1 on Redis, --replicas on Redis, the store operations alone' },
      json: { type: 'string', describe: 'also write the figures to this file' },
    })
    .strict()
    .help()
    .parseAsync();
  const pixels = loadMnist('test').pixels;
  const dir = mkdtempSync(join(tmpdir(), 'transferlab-replica-load-'));
  const redis = await startRedis({ durable: true });
  const started: VictimProcess[] = [];
  const victim = async (extra: string[]) => {
    const v = await spawnVictim({ args: ['--model', a.model, '--port', '0', '--no-train', '--rate-limit', '0', '--log-level', 'warn', ...extra], timeoutMs: 120_000 });
    started.push(v);
    return v.url;
  };
  const stopAll = async () => {
    await Promise.all(started.map((v) => v.stop()));
    started.length = 0;
  };
  const cells: LoadCell[] = [];
  try {
    const want = new Set(a.setups);
    const detector = a.detector.some((d) => d !== 'none') ? ['--detector', ...a.detector.filter((d) => d !== 'none')] : [];
    if (want.has('files')) {
      const files = await victim(['--ledger', join(dir, 'ledger.jsonl'), '--audit-log', join(dir, 'audit.jsonl'), ...detector]);
      cells.push(await measure('files', [files], pixels, a.requests));
      await stopAll();
    }
    if (want.has('redis')) {
      const one = await victim(['--store', redis.url, '--replica-id', 'solo', '--audit-log', join(dir, 'audit-solo.jsonl'), ...detector]);
      cells.push(await measure('redis', [one], pixels, a.requests));
      await stopAll();
    }
    if (want.has('replicas')) {
      const urls = await Promise.all(Array.from({ length: a.replicas }, (_, i) => victim(['--store', redis.url, '--replica-id', `r${i}`, '--audit-log', join(dir, `audit-r${i}.jsonl`), ...detector])));
      cells.push(await measure('redis', urls, pixels, a.requests));
      await stopAll();
    }
    for (const c of cells) console.log(`${c.replicas} replica(s) on ${c.setup}${detector.length ? ` (${detector.slice(1).join('+')})` : ''}: ${c.imagesPerSecond} labels/s, p50 ${c.p50Ms.toFixed(1)} ms, p99 ${c.p99Ms.toFixed(1)} ms`);
    const store = want.has('store') ? await storeLatency(redis.url, a.requests) : undefined;
    const redisOne = cells.find((c) => c.setup === 'redis' && c.replicas === 1);
    if (store) {
      console.log(
        `store operations per request (reserve + charge with its Idempotency-Key record + claim, 8 at a time): p50 ${store.p50Ms.toFixed(2)} ms, p99 ${store.p99Ms.toFixed(2)} ms` +
          (redisOne ? ` = ${((100 * store.p50Ms) / redisOne.p50Ms).toFixed(1)} % of a request's p50 on one Redis replica` : ''),
      );
    }
    if (a.json) writeFileSync(a.json, JSON.stringify({ date: new Date().toISOString(), clients: CLIENTS, batch: BATCH, detector: a.detector, cells, store }, null, 2) + '\n');
    return 0;
  } finally {
    await stopAll();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) runMain(main);
