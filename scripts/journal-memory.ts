/**
 * How much Redis memory the extraction detectors' shared state of one client takes as its queries
 * pile up, not part of `npm test`. Streams MNIST training images (the dataset's labels standing in
 * for the victim's answers) in requests of `--batch` through two replicas' SharedDetectorState on one
 * private redis-server, taking turns as a round-robin load balancer would, and prints MEMORY USAGE
 * of the client's keys (tl:det*) at each checkpoint (and the most they held after any request so
 * far), with the snapshot's size and the server's used_memory. At the end a third,
 * fresh replica catches up from Redis alone and must hold the state of one detector that observed
 * every request (the check that compacting loses nothing).
 *
 *   npx tsx scripts/journal-memory.ts [--at 1000 10000 50000] [--batch 100] [--detector prada blacklight] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { Redis } from 'ioredis';
import yargs from 'yargs';
import { isMain, runMain } from '../shared/cli.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import { detectorSet, type QueryDetector } from '../victim/detect/detectors.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { SharedDetectorState, detectorNamespace } from '../victim/detect/shared-state.js';
import { startRedis } from './redis-server.js';

export interface MemoryPoint {
  images: number;
  /** Sum of MEMORY USAGE over the client's detector keys. */
  keyBytes: number;
  /** The largest such sum after any request so far. */
  peakKeyBytes: number;
  /** Bytes of the client's snapshot (0 when there is none). */
  snapshotBytes: number;
  keys: Record<string, number>;
  usedMemory: number;
  seconds: number;
}

const CLIENT = 'journal-memory';

async function keyUsage(redis: Redis, namespace: string): Promise<Record<string, number>> {
  const keys = await redis.keys(`tl:det*:${namespace}:${CLIENT}`);
  const out: Record<string, number> = {};
  for (const k of keys.sort()) out[k.split(':')[1]] = Number((await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) ?? 0);
  return out;
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      at: { type: 'number', array: true, default: [1000, 10_000, 50_000], describe: 'images after which to measure (the last is the stream length, at most 60,000)' },
      batch: { type: 'number', default: 100, describe: 'images per request' },
      detector: { type: 'string', array: true, default: ['prada', 'blacklight'], choices: ['prada', 'blacklight'], describe: 'detectors whose state is shared' },
      json: { type: 'string', describe: 'also write the figures to this file' },
    })
    .strict()
    .help()
    .parseAsync();
  const at = [...a.at].sort((x, y) => x - y);
  const total = at.at(-1) ?? 0;
  const train = loadMnist('train');
  if (total > train.count) throw new Error(`--at goes up to ${total} images; the MNIST training set has ${train.count}`);
  const make = (): QueryDetector =>
    detectorSet({ prada: a.detector.includes('prada') ? new PradaDetector() : undefined, blacklight: a.detector.includes('blacklight') ? new BlacklightDetector() : undefined });
  const reference = make();
  const namespace = detectorNamespace(reference);
  const server = await startRedis();
  const connections: Redis[] = [];
  const connect = () => {
    const c = new Redis(server.url);
    connections.push(c);
    return c;
  };
  try {
    const db = connect();
    const replicas = [0, 1].map(() => ({ detector: make(), state: new SharedDetectorState(connect(), namespace) }));
    const baseline = await usedMemory(db);
    const points: MemoryPoint[] = [];
    const started = performance.now();
    let peak = 0;
    for (let sent = 0, n = 0, next = 0; next < at.length; n++) {
      const count = Math.min(a.batch, at[next] - sent);
      const images = Float32Array.from(train.pixels.subarray(sent * IMAGE_SIZE, (sent + count) * IMAGE_SIZE), (v) => v / 255);
      const labels = train.labels.subarray(sent, sent + count);
      const r = replicas[n % replicas.length];
      await r.state.observe(r.detector, CLIENT, images, labels);
      reference.observe(CLIENT, images, labels);
      sent += count;
      const keys = await keyUsage(db, namespace);
      const keyBytes = Object.values(keys).reduce((s, v) => s + v, 0);
      peak = Math.max(peak, keyBytes);
      if (sent === at[next]) {
        const snapshotBytes = await db.hstrlen(`tl:detsnap:${namespace}:${CLIENT}`, 'state');
        const point = { images: sent, keyBytes, peakKeyBytes: peak, snapshotBytes, keys, usedMemory: (await usedMemory(db)) - baseline, seconds: (performance.now() - started) / 1000 };
        points.push(point);
        console.log(
          `${String(sent).padStart(6)} images: ${(point.keyBytes / 1e6).toFixed(3)} MB in the client's keys (${Object.entries(keys).map(([k, v]) => `${k} ${v}`).join(', ')}), ` +
            `at most ${(peak / 1e6).toFixed(3)} MB so far, snapshot ${snapshotBytes} bytes, used_memory +${(point.usedMemory / 1e6).toFixed(3)} MB, ${point.seconds.toFixed(1)} s`,
        );
        next++;
      }
    }
    // A replica that saw none of it catches up from Redis with an empty request.
    const late = { detector: make(), state: new SharedDetectorState(connect(), namespace) };
    await late.state.observe(late.detector, CLIENT, new Float32Array(0), new Int32Array(0));
    reference.observe(CLIENT, new Float32Array(0), new Int32Array(0));
    const agrees = isDeepStrictEqual(late.detector.summaries(), reference.summaries());
    console.log(`a fresh replica caught up from Redis ${agrees ? 'holds' : 'does NOT hold'} the state of one detector that saw every request`);
    if (a.json) writeFileSync(a.json, JSON.stringify({ date: new Date().toISOString(), batch: a.batch, detector: a.detector, replicas: replicas.length, points, agrees }, null, 2) + '\n');
    return agrees ? 0 : 1;
  } finally {
    for (const c of connections) c.disconnect();
    await server.stop();
  }
}

if (isMain(import.meta.url)) runMain(main);
