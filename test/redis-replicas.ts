import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis } from '../scripts/redis-server.js';
import { ensureTestVictim } from './fixtures.js';
import { startCutProxy, type CutProxy } from './redis-cut-proxy.js';
import { startKeyedVictim, type KeyEntry, type KeyedVictim } from './victim-client.js';

/**
 * Victim replicas r0, r1, … on one real Redis (AOF, fsync always): keyed victims sharing one keys file,
 * each with its own audit log (`files.audit`; no ledger, the budgets live in Redis) and the PRADA and
 * Blacklight detectors in block mode. The replicas `throughProxy` names reach Redis through a proxy the
 * test can cut between two commands.
 */
export interface RedisReplicas {
  /** A client of the same Redis, for the test to read the shared state. */
  db: Redis;
  proxy: CutProxy;
  replicas: KeyedVictim[];
  stop(): Promise<void>;
}

export async function startRedisReplicas(o: { tag: string; keys: readonly KeyEntry[]; throughProxy: readonly boolean[] }): Promise<RedisReplicas> {
  const model = await ensureTestVictim();
  const dir = mkdtempSync(join(tmpdir(), `transferlab-${o.tag}-`));
  const redis = await startRedis({ durable: true });
  const db = new Redis(redis.url);
  const proxy = await startCutProxy(redis.port);
  const replicas: KeyedVictim[] = [];
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
      startKeyedVictim({
        dir, model, keys: o.keys, name: `r${i}`, backend: 'wasm', rateLimit: 0, ledger: false,
        args: ['--store', viaProxy ? proxy.url : redis.url, '--replica-id', `r${i}`, '--log-level', 'warn', '--detector', 'prada', 'blacklight', '--detector-action', 'block'],
      }),
    ),
  );
  for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { db, proxy, replicas, stop };
}
