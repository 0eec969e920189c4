import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../scripts/redis-server.js';
import { ensureTestVictim } from './fixtures.js';
import { startCutProxy, type CutProxy } from './redis-cut-proxy.js';
import { startVictim, type TestVictim } from './victim-client.js';

/**
 * Victim replicas on one real Redis (AOF, fsync always), each with its own audit log
 * (`audit-r<i>.jsonl` in `dir`) and the PRADA and Blacklight detectors in block mode; the replicas
 * `throughProxy` names reach Redis through a proxy the test can cut between two commands.
 */
export interface RedisReplicas {
  redis: TestRedis;
  /** A client of the same Redis, for the test to read the shared state. */
  db: Redis;
  proxy: CutProxy;
  dir: string;
  replicas: TestVictim[];
  stop(): Promise<void>;
}

export async function startRedisReplicas(o: { tag: string; keys: readonly object[]; throughProxy: readonly boolean[] }): Promise<RedisReplicas> {
  const model = await ensureTestVictim();
  const dir = mkdtempSync(join(tmpdir(), `transferlab-${o.tag}-`));
  const redis = await startRedis({ durable: true });
  const db = new Redis(redis.url);
  const proxy = await startCutProxy(redis.port);
  writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: o.keys }));
  const replicas: TestVictim[] = [];
  const stop = async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    db.disconnect();
    await proxy.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  // A replica that fails to start must not leave the others, Redis or the folder behind.
  const started = await Promise.allSettled(
    o.throughProxy.map((viaProxy, i) =>
      startVictim(
        ['--model', model, '--keys', join(dir, 'keys.json'), '--store', viaProxy ? proxy.url : redis.url, '--replica-id', `r${i}`, '--audit-log', join(dir, `audit-r${i}.jsonl`), '--rate-limit', '0', '--log-level', 'warn',
          '--detector', 'prada', 'blacklight', '--detector-action', 'block'],
        'wasm',
      ),
    ),
  );
  for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { redis, db, proxy, dir, replicas, stop };
}
