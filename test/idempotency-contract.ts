import { expect, it } from 'vitest';
import type { IdempotencyStore } from '../victim/store/idempotency.js';

/**
 * What every IdempotencyStore must do, as test cases any store's suite can run against a real store
 * (`make` gets a clock it must use for expiry, and a TTL).
 */
export function idempotencyStoreContract(make: (clock: () => Date, ttlMs: number) => Promise<IdempotencyStore>): void {
  const ticketOf = async (p: ReturnType<IdempotencyStore['replayOrClaim']>) => {
    const c = await p;
    if (!('ticket' in c)) throw new Error('expected a ticket, got a replay');
    return c.ticket;
  };

  it('replays charged labels to the same caller and body only', async () => {
    const store = await make(() => new Date(), 60_000);
    const t = await ticketOf(store.replayOrClaim('alice', 'k1', 'body'));
    await store.finish(t, Int32Array.from([3, 1]));
    expect(await store.replayOrClaim('alice', 'k1', 'body')).toEqual({ labels: Int32Array.from([3, 1]) });
    expect('ticket' in (await store.replayOrClaim('bob', 'k1', 'body'))).toBe(true); // scoped to the caller
    await expect(store.replayOrClaim('alice', 'k1', 'other body')).rejects.toMatchObject({ code: 'idempotency_key_reused', status: 422 });
    await store.abandon(t); // already charged: the record stays
    expect('labels' in (await store.replayOrClaim('alice', 'k1', 'body'))).toBe(true);
    await store.close();
  });

  it('a repeat waits for the request in flight; an abandoned key is served (and charged) again', async () => {
    const store = await make(() => new Date(), 60_000);
    const first = await ticketOf(store.replayOrClaim('alice', 'k2', 'b2'));
    const repeat = store.replayOrClaim('alice', 'k2', 'b2');
    await store.finish(first, Int32Array.from([7]));
    expect(await repeat).toEqual({ labels: Int32Array.from([7]) });
    const failed = await ticketOf(store.replayOrClaim('alice', 'k3', 'b3'));
    const retry = store.replayOrClaim('alice', 'k3', 'b3');
    await store.abandon(failed);
    expect('ticket' in (await retry)).toBe(true);
    await store.close();
  });

  it('forgets a record once it expires', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const store = await make(() => new Date(now), 1000);
    await store.finish(await ticketOf(store.replayOrClaim('alice', 'k4', 'b4')), Int32Array.from([2]));
    now += 999;
    expect('labels' in (await store.replayOrClaim('alice', 'k4', 'b4'))).toBe(true);
    now += 1;
    expect('ticket' in (await store.replayOrClaim('alice', 'k4', 'b4'))).toBe(true);
    await store.close();
  });
}
