import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { TransferlabError } from '../../shared/errors.js';
import { IDEMPOTENCY_TTL_MS, keyReused, type IdempotencyClaim, type IdempotencyRecordWrite, type IdempotencyStore, type IdempotencyTicket } from './idempotency.js';

/**
 * Idempotency-Key records shared by every victim replica, in the Redis store: the same key sent to
 * two replicas is charged once. A request claims the key with SET NX (atomic: of two identical
 * requests on two replicas exactly one gets the claim); the claim lasts CLAIM_MS, so a replica
 * killed in the middle of a request never blocks the key for long. Once charged, the record holds
 * the labels and expires after the TTL (Redis's own expiry). A repeat that finds a claim in flight
 * waits for its outcome. The victim writes the finished record in the same Lua script as the charge
 * (`recordFor`, RedisVictimStore.commitWithRecord), so a replica killed at any moment leaves either
 * both or neither: never a charge whose retry is charged again.
 */
const PREFIX = 'tl:idem:';
/** How long a claim in flight blocks its key: well above a model call, below a client's patience. */
export const CLAIM_MS = 30_000;
const POLL_MS = 20;

interface Held {
  sha: string;
  state: 'pending' | 'done';
  token?: string;
  labels?: number[];
}

interface RedisTicket extends IdempotencyTicket {
  readonly token: string;
}

// KEYS: record. ARGV: token. Release a claim only if it is still this request's and still pending.
const ABANDON = `
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).state == 'pending' and cjson.decode(v).token == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`;

export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    readonly ttlMs = IDEMPOTENCY_TTL_MS,
  ) {
    redis.defineCommand('tlIdemAbandon', { numberOfKeys: 1, lua: ABANDON });
  }

  private static key(keyId: string, key: string): string {
    return `${PREFIX}${keyId}\n${key}`;
  }

  async replayOrClaim(keyId: string, key: string, payloadSha256: string): Promise<IdempotencyClaim> {
    const k = RedisIdempotencyStore.key(keyId, key);
    for (;;) {
      const token = randomUUID();
      const claim: Held = { sha: payloadSha256, state: 'pending', token };
      let got: string | null;
      let prior: string | null = null;
      try {
        got = await this.redis.set(k, JSON.stringify(claim), 'PX', CLAIM_MS, 'NX');
        if (got !== 'OK') prior = await this.redis.get(k);
      } catch (e) {
        throw new TransferlabError('store_unavailable', `the shared idempotency store cannot be reached (${(e as Error).message}); nothing was charged — try again`, 503);
      }
      if (got === 'OK') {
        const ticket: RedisTicket = { keyId, key, payloadSha256, token };
        return { ticket };
      }
      if (prior === null) continue; // expired or abandoned between the two commands: claim again
      const held = JSON.parse(prior) as Held;
      if (held.sha !== payloadSha256) throw keyReused();
      if (held.state === 'done' && held.labels) return { labels: Int32Array.from(held.labels) };
      await new Promise((r) => setTimeout(r, POLL_MS)); // in flight on some replica: wait for its outcome
    }
  }

  recordFor(t: IdempotencyTicket, labels: Int32Array): IdempotencyRecordWrite {
    const done: Held = { sha: t.payloadSha256, state: 'done', labels: Array.from(labels) };
    return { key: RedisIdempotencyStore.key(t.keyId, t.key), value: JSON.stringify(done), ttlMs: this.ttlMs };
  }

  async finish(t: IdempotencyTicket, labels: Int32Array): Promise<void> {
    const r = this.recordFor(t, labels);
    await this.redis.set(r.key, r.value, 'PX', r.ttlMs);
  }

  async abandon(t: IdempotencyTicket): Promise<void> {
    const k = RedisIdempotencyStore.key(t.keyId, t.key);
    await (this.redis as unknown as { tlIdemAbandon(k: string, token: string): Promise<number> }).tlIdemAbandon(k, (t as RedisTicket).token);
  }

  /** The connection belongs to the victim's store, which closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
