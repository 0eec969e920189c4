import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { TransferlabError } from '../../shared/errors.js';
import { parseRedisUrl } from '../../shared/redis-url.js';
import type { DetectionRecord } from '../detect/detection.js';
import type { IdempotencyRecordWrite } from './idempotency.js';
import type { Principal } from './keys.js';
import { DETECTIONS_KEY } from '../detect/shared-state.js';
import { budgetExhausted, type Budgets, type Reservation } from './ledger.js';

/**
 * State every victim replica shares, in one Redis (`npm run victim -- --store redis://…`):
 * budgets and charges, in-flight reservations, and extraction-detector blocks (the Idempotency-Key
 * records are in idempotency-redis.ts). Each check-and-change is one Lua script, which Redis runs
 * atomically, so replicas never race between reading a budget and holding part of it.
 *
 * Keys (prefix tl:): used:<key id> — images charged; held:<key id> — a sorted set of reservations
 * "<id>:<images>" scored by their expiry (ms), so a replica killed with a batch in flight holds that
 * budget only until the hold expires, never for good; detections — a hash client → detection.
 *
 * A charge and the request's Idempotency-Key record are one script (commitWithRecord): Redis runs a
 * script whole and logs its writes to the append-only file together, so no crash of a replica or of
 * Redis separates them.
 *
 * Durability: a charge is acknowledged by Redis before the answer leaves; it survives a Redis crash
 * only with the append-only file fsync'd on every write (appendonly yes, appendfsync always), which
 * `durabilityWarning` checks at start-up.
 */
const PREFIX = 'tl:';
/** How long a reservation holds budget without being charged or released (a model call takes ms). */
export const HOLD_MS = 120_000;

// KEYS: used, held. ARGV: images, limit (-1 = none), hold id, hold ms. → {ok, used, held}
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  held = held + tonumber(string.match(m, ':(%d+)$'))
end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and used + held + n > limit then return {0, used, held} end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3] .. ':' .. ARGV[1])
return {1, used, held}
`;
// KEYS: used, held. ARGV: images, hold id. → used after the charge. A hold that expired meanwhile is
// charged all the same: the answer is about to leave, and an error must go against the caller.
const COMMIT = `
redis.call('ZREM', KEYS[2], ARGV[2] .. ':' .. ARGV[1])
return redis.call('INCRBY', KEYS[1], ARGV[1])
`;

// KEYS: used, held, idempotency record. ARGV: images, hold id, record, record ttl ms. → used after the
// charge. The charge and the request's Idempotency-Key record in one script, which Redis runs (and
// writes to the append-only file) as one: a replica killed at any point leaves both or neither.
const COMMIT_RECORDING = `
redis.call('ZREM', KEYS[2], ARGV[2] .. ':' .. ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return redis.call('INCRBY', KEYS[1], ARGV[1])
`;

export interface StoreDurability {
  appendonly: string;
  appendfsync: string;
}

/** Why charges could be lost by a Redis crash with these settings, or null when they cannot. */
export function durabilityWarning(d: StoreDurability): string | null {
  if (d.appendonly === 'yes' && d.appendfsync === 'always') return null;
  return (
    `the Redis store runs with appendonly ${d.appendonly}, appendfsync ${d.appendfsync}: charges answered in the last ` +
    `${d.appendonly === 'yes' ? 'second' : 'snapshot interval'} can be lost if Redis crashes. Start it with ` +
    `\`redis-server --appendonly yes --appendfsync always\` (or CONFIG SET both) so no answered charge is ever lost`
  );
}

export class RedisVictimStore implements Budgets {
  private constructor(
    readonly redis: Redis,
    readonly shown: string,
  ) {
    redis.defineCommand('tlReserve', { numberOfKeys: 2, lua: RESERVE });
    redis.defineCommand('tlCommit', { numberOfKeys: 2, lua: COMMIT });
    redis.defineCommand('tlCommitRecording', { numberOfKeys: 3, lua: COMMIT_RECORDING });
  }

  /** Connect and check the server answers (a clear error now beats retries on every request). */
  static async open(url: string): Promise<RedisVictimStore> {
    const address = parseRedisUrl(url, '--store');
    const redis = new Redis(address.url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    try {
      await redis.connect();
      await redis.ping();
    } catch (e) {
      redis.disconnect();
      throw new TransferlabError('store_unreachable', `cannot reach the Redis store ${address.shown}: ${(e as Error).message}`, 500);
    }
    redis.on('error', () => {}); // reconnects are ioredis's; each failed command reports its own error
    return new RedisVictimStore(redis, address.shown);
  }

  async durability(): Promise<StoreDurability> {
    const get = async (name: string) => {
      try {
        const r = (await this.redis.config('GET', name)) as string[];
        return r[1] ?? 'unknown';
      } catch {
        return 'unknown (CONFIG GET refused)';
      }
    };
    return { appendonly: await get('appendonly'), appendfsync: await get('appendfsync') };
  }

  private fail(e: unknown): never {
    if (e instanceof TransferlabError) throw e;
    throw new TransferlabError('store_unavailable', `the shared budget store cannot be reached (${(e as Error).message}); nothing was charged — try again`, 503);
  }

  async reserve(who: Principal, images: number): Promise<Reservation> {
    const id = randomUUID();
    let r: [number, number, number];
    try {
      r = (await (this.redis as unknown as Scripts).tlReserve(`${PREFIX}used:${who.id}`, `${PREFIX}held:${who.id}`, images, who.limit ?? -1, id, HOLD_MS)) as [number, number, number];
    } catch (e) {
      this.fail(e);
    }
    if (r[0] !== 1) throw budgetExhausted(images, r[1], who.limit ?? 0, r[2]);
    return { keyId: who.id, images, settled: false, id };
  }

  async release(r: Reservation): Promise<void> {
    if (r.settled) return;
    r.settled = true;
    // A failed release only leaves the hold to expire on its own.
    await this.redis.zrem(`${PREFIX}held:${r.keyId}`, `${r.id}:${r.images}`).catch(() => 0);
  }

  async commit(r: Reservation): Promise<number> {
    if (r.settled) throw new TransferlabError('reservation_settled', 'reservation already settled', 500);
    r.settled = true;
    try {
      return Number(await (this.redis as unknown as Scripts).tlCommit(`${PREFIX}used:${r.keyId}`, `${PREFIX}held:${r.keyId}`, r.images, r.id ?? ""));
    } catch (e) {
      throw new TransferlabError('ledger_unavailable', `the shared budget store cannot record the charge (${(e as Error).message}); try again later`, 503);
    }
  }

  async commitWithRecord(r: Reservation, record: IdempotencyRecordWrite): Promise<number> {
    if (r.settled) throw new TransferlabError('reservation_settled', 'reservation already settled', 500);
    r.settled = true;
    try {
      const keys = [`${PREFIX}used:${r.keyId}`, `${PREFIX}held:${r.keyId}`, record.key] as const;
      return Number(await (this.redis as unknown as Scripts).tlCommitRecording(...keys, r.images, r.id ?? '', record.value, record.ttlMs));
    } catch (e) {
      throw new TransferlabError('ledger_unavailable', `the shared budget store cannot record the charge (${(e as Error).message}); try again later`, 503);
    }
  }

  async used(keyId: string): Promise<number> {
    return Number((await this.redis.get(`${PREFIX}used:${keyId}`)) ?? 0);
  }

  /** Images charged so far over every key (start-up banner). */
  async totalCharged(): Promise<number> {
    let total = 0;
    for (const k of await this.redis.keys(`${PREFIX}used:*`)) total += Number((await this.redis.get(k)) ?? 0);
    return total;
  }

  // Detector blocks: one hash, so every replica refuses a client any replica flagged.
  async detection(client: string): Promise<DetectionRecord | undefined> {
    const v = await this.redis.hget(DETECTIONS_KEY, client);
    return v ? (JSON.parse(v) as DetectionRecord) : undefined;
  }

  async putDetection(r: DetectionRecord): Promise<void> {
    await this.redis.hset(DETECTIONS_KEY, r.client, JSON.stringify(r));
  }

  async deleteDetection(client: string): Promise<boolean> {
    return (await this.redis.hdel(DETECTIONS_KEY, client)) > 0;
  }

  async detections(): Promise<DetectionRecord[]> {
    return Object.values(await this.redis.hgetall(DETECTIONS_KEY)).map((v) => JSON.parse(v) as DetectionRecord);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

interface Scripts {
  tlReserve(used: string, held: string, images: number, limit: number, id: string, holdMs: number): Promise<unknown>;
  tlCommit(used: string, held: string, images: number, id: string): Promise<unknown>;
  tlCommitRecording(used: string, held: string, record: string, images: number, id: string, value: string, ttlMs: number): Promise<unknown>;
}
