import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_SIZE } from '../shared/datasets/index.js';
import { REDIS_SERVER, haveRedis } from '../scripts/redis-server.js';
import type { DetectionRecord } from '../victim/detect/detection.js';
import { signAugmentedStream } from './extraction-stream.js';
import type { CutProxy } from './redis-cut-proxy.js';
import { startRedisReplicas, type RedisReplicas } from './redis-replicas.js';
import { bearer, labelUint8, type Reply, type TestVictim } from './victim-client.js';

/**
 * A detection must not die with the replica that made it: two real victim replicas on one real
 * Redis (AOF, fsync always), detectors in block mode; the replica whose request makes a client cross
 * the threshold is SIGKILLed the moment its detector journal reaches Redis. The other replica must
 * refuse the client from then on, and the crossing request, charged once, stays charged once.
 */
const KEYS = [
  { id: 'scout', key: 'k-scout-0123456789', budget: 100_000 },
  { id: 'crossing', key: 'k-crossing-0123456789', budget: 100_000 },
];
const BATCH = 25;

/** Replica r1 reaches Redis through it, so the test can cut it off right after one script. */
let proxy: CutProxy;
let db: Redis;
const replicas: TestVictim[] = [];

const stream = signAugmentedStream().pixels;
const requests = stream.length / IMAGE_SIZE / BATCH;
const body = (k: number) => stream.subarray(k * BATCH * IMAGE_SIZE, (k + 1) * BATCH * IMAGE_SIZE);
const send = (victim: TestVictim, key: (typeof KEYS)[number], k: number): Promise<Reply> =>
  labelUint8(victim.url, body(k), { ...bearer(key.key), 'Idempotency-Key': `${key.id}-request-${k}` });
const charged = async (keyId: string) => Number((await db.get(`tl:used:${keyId}`)) ?? 0);

let fixture: RedisReplicas | undefined;
beforeAll(async () => {
  if (!haveRedis) return;
  fixture = await startRedisReplicas({ tag: 'detector-crash', keys: KEYS, throughProxy: [false, true] });
  ({ db, proxy } = fixture);
  replicas.push(...fixture.replicas);
});

afterAll(() => fixture?.stop());

describe.skipIf(!haveRedis)(`a replica killed right after the request that flagged a client (${REDIS_SERVER})`, () => {
  it('another replica refuses the client, and the crossing request is charged once', async () => {
    // The same requests under another key find which one crosses the threshold (the detectors and
    // the model are deterministic): the scout is refused right after it.
    let crossing = -1;
    for (let k = 0; k < requests; k++) {
      const r = await send(replicas[0], KEYS[0], k);
      if (r.status === 403) {
        expect(r.body.error?.code).toBe('extraction_suspected');
        crossing = k - 1;
        break;
      }
      expect(r.status).toBe(200);
    }
    expect(crossing).toBeGreaterThan(0);

    // The requests before it, spread over both replicas.
    const key = KEYS[1];
    for (let k = 0; k < crossing; k++) expect((await send(replicas[k % 2], key, k)).status).toBe(200);
    expect(await db.hexists('tl:detections', key.id)).toBe(0);

    // The crossing request goes to r1, which dies right after its second script naming the client's
    // detector log: the first takes the client's lock and reads the log, the second appends the journal.
    const killed = replicas[1];
    let scripts = 0;
    proxy.arm(
      (args) => /^eval/i.test(args[0] ?? '') && args.some((a) => a.startsWith('tl:detlog:') && a.endsWith(`:${key.id}`)) && ++scripts === 2,
      () => process.kill(killed.pid, 'SIGKILL'),
    );
    await expect(send(killed, key, crossing)).rejects.toThrow(); // no answer came back
    // Charged once, by r1, before it watched the answer.
    for (let i = 0; (await charged(key.id)) < (crossing + 1) * BATCH && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await charged(key.id)).toBe((crossing + 1) * BATCH);

    // The survivor refuses the client: the retry of the crossing request (same Idempotency-Key) and a new one.
    const retry = await send(replicas[0], key, crossing);
    expect(retry).toMatchObject({ status: 403, body: { error: { code: 'extraction_suspected' } } });
    const next = await send(replicas[0], key, crossing + 1);
    expect(next).toMatchObject({ status: 403, body: { error: { code: 'extraction_suspected' } } });
    expect(await charged(key.id)).toBe((crossing + 1) * BATCH);
    // The detection the dead replica made, with the evidence the scout's shows.
    const record = JSON.parse((await db.hget('tl:detections', key.id)) ?? 'null') as DetectionRecord | null;
    const scout = JSON.parse((await db.hget('tl:detections', KEYS[0].id)) ?? 'null') as DetectionRecord | null;
    expect(record).toMatchObject({ keyId: key.id, client: key.id, action: 'block', by: scout?.by, queries: scout?.queries });
  });
});
