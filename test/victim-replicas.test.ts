import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import type { AuditEntry, AuditEvent } from '../victim/store/audit.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import type { DetectionRecord } from '../victim/detect/detection.js';
import { detectorSet } from '../victim/detect/detectors.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { signAugmentedStream } from './extraction-stream.js';
import { REDIS_SERVER, haveRedis } from '../scripts/redis-server.js';
import type { CutProxy } from './redis-cut-proxy.js';
import { startRedisReplicas, type RedisReplicas } from './redis-replicas.js';
import type { KeyedVictim, TestVictim } from './victim-client.js';

/**
 * Three real victim replicas on one real Redis (AOF, fsync always): budgets, Idempotency-Key
 * records, charges and the extraction detectors' state (PRADA and Blacklight, block mode) are
 * shared, each replica keeps its own audit log. 16 clients race one budget through all three; a
 * replica is SIGKILLed under load; one Idempotency-Key is sent to two replicas; an extraction
 * stream spread over two replicas is flagged exactly where one detector seeing it all flags it.
 * Redis's count, the audit logs and the clients' own tally must agree.
 */
const KEYS = [
  { id: 'racer', key: 'k-racer-0123456789', budget: 1000 },
  { id: 'steady', key: 'k-steady-0123456789', budget: 1_000_000 },
  { id: 'twice', key: 'k-twice-0123456789', budget: 1000 },
  { id: 'spread', key: 'k-spread-0123456789', budget: 100_000 },
  { id: 'probe', key: 'k-probe-0123456789', budget: 100_000 },
  { id: 'cut', key: 'k-cut-0123456789', budget: 1000 },
  { id: 'reader', key: 'k-reader-0123456789', budget: 500 },
];
const BATCH = 7;
const CLIENTS = 16;

/** Replica r2 reaches Redis through it, so the last test can cut it off right after its charge. */
let proxy: CutProxy;
let db: Redis;
const replicas: KeyedVictim[] = [];

interface Sent {
  status: number;
  requestId: string | null;
  replayed: boolean;
  code?: string;
  labels?: number[];
}

async function send(url: string, key: string, body: Buffer, idempotencyKey?: string): Promise<Sent> {
  const res = await fetch(`${url}/v1/label`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${key}`,
      'Content-Type': 'application/octet-stream',
      ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}),
    },
    body: new Uint8Array(body),
  });
  const json = (await res.json()) as { error?: { code: string }; labels?: number[] };
  return { status: res.status, requestId: res.headers.get('x-request-id'), replayed: res.headers.get('idempotent-replayed') === 'true', code: json.error?.code, labels: json.labels };
}

const images = (n: number) => randomBytes(n * 784);

function auditLines(): unknown[] {
  return replicas.flatMap(({ files: { audit: path } }) => {
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as unknown);
  });
}
const auditEntries = () => auditLines().filter((e): e is AuditEntry => 'requestId' in (e as object) && !('event' in (e as object)));
const auditEvents = () => auditLines().filter((e): e is AuditEvent => 'event' in (e as object));

const charged = async (keyId: string) => Number((await db.get(`tl:used:${keyId}`)) ?? 0);

let fixture: RedisReplicas | undefined;
beforeAll(async () => {
  if (!haveRedis) {
    console.warn(`skipped: no ${REDIS_SERVER} (Debian's redis-server; .ci/run installs it)`);
    return;
  }
  fixture = await startRedisReplicas({ tag: 'replicas', keys: KEYS, throughProxy: [false, false, true] });
  ({ db, proxy } = fixture);
  replicas.push(...fixture.replicas);
});

afterAll(() => fixture?.stop());

describe.skipIf(!haveRedis)('victim replicas on a shared Redis store', () => {
  it('starts without a durability warning on a server with AOF fsync always', () => {
    expect(replicas[0].output()).toContain('shared store redis://127.0.0.1');
    expect(replicas[0].output()).not.toContain('warning:');
  });

  it('16 clients racing one budget through three replicas: charged = answered ≤ budget', async () => {
    const key = KEYS[0];
    let answered = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = c; ; i++) {
          const r = await send(replicas[i % 3].url, key.key, images(BATCH));
          if (r.status === 200) answered += BATCH;
          else {
            expect(r.code).toBe('budget_exhausted');
            return;
          }
        }
      }),
    );
    const fromAudit = auditEntries()
      .filter((e) => e.keyId === key.id && e.outcome === 'answered')
      .reduce((s, e) => s + e.images, 0);
    expect(answered).toBeLessThanOrEqual(key.budget);
    expect(answered).toBeGreaterThan(key.budget - BATCH); // the budget was used up, not lost to stale holds
    expect(await charged(key.id)).toBe(answered);
    expect(fromAudit).toBe(answered);
    // All three replicas served part of it.
    for (const i of [0, 1, 2]) expect(auditEntries().some((e) => e.keyId === key.id && e.outcome === 'answered' && readFileSync(replicas[i].files.audit, 'utf8').includes(e.requestId))).toBe(true);
  });

  it('GET /v1/budget on any replica answers the shared count, charges nothing, and is neither audited nor watched', async () => {
    const key = KEYS.find((k) => k.id === 'reader')!;
    const budget = async (i: number) => {
      const res = await fetch(`${replicas[i].url}/v1/budget`, { headers: { Authorization: `Bearer ${key.key}` } });
      expect(res.status).toBe(200);
      return (await res.json()) as { used: number; limit: number | null };
    };
    expect(await budget(1)).toEqual({ used: 0, limit: 500 });
    expect((await send(replicas[0].url, key.key, images(BATCH))).status).toBe(200);
    for (let i = 0; i < 30; i++) expect(await budget(i % 3)).toEqual({ used: BATCH, limit: 500 });
    expect(await charged('reader')).toBe(BATCH);
    expect(auditEntries().filter((e) => e.keyId === 'reader')).toHaveLength(1);
    expect(auditEvents().filter((e) => JSON.stringify(e).includes('reader'))).toEqual([]);
  });

  it('one Idempotency-Key sent to two replicas is charged once', async () => {
    const key = KEYS[2];
    const body = images(BATCH);
    const first = await send(replicas[0].url, key.key, body, 'same-request-1');
    const second = await send(replicas[2].url, key.key, body, 'same-request-1');
    expect([first.status, second.status]).toEqual([200, 200]);
    expect([first.replayed, second.replayed]).toEqual([false, true]);
    // At the same moment on two replicas: exactly one pays.
    const both = images(BATCH);
    const race = await Promise.all([send(replicas[0].url, key.key, both, 'same-request-2'), send(replicas[1].url, key.key, both, 'same-request-2')]);
    expect(race.map((r) => r.status)).toEqual([200, 200]);
    expect(race.filter((r) => r.replayed)).toHaveLength(1);
    expect(await charged(key.id)).toBe(2 * BATCH);
  });

  /**
   * Send `stream` (uint8 images) in requests of `batch`, in turn to `targets`, until the key is refused;
   * feed the same requests, with the labels the replicas answered, to one in-process detector set
   * with the replicas' settings: where it flags is where one replica seeing every query flags.
   */
  async function spreadUntilRefused(key: (typeof KEYS)[number], stream: Uint8Array, batch: number, targets: TestVictim[]) {
    const reference = detectorSet({ prada: new PradaDetector(), blacklight: new BlacklightDetector() });
    let expected: { queries: number; w: number; by?: string; matches?: number; answered: number } | undefined;
    let answered = 0;
    for (let at = 0, n = 0; at * IMAGE_SIZE < stream.length; at += batch, n++) {
      const body = Buffer.from(stream.subarray(at * IMAGE_SIZE, (at + batch) * IMAGE_SIZE));
      const r = await send(targets[n % targets.length].url, key.key, body);
      if (r.status !== 200) return { refused: r, answered, requests: n, expected };
      answered += body.length / IMAGE_SIZE;
      const found = reference.observe(key.id, Float32Array.from(body, (v) => v / 255), Int32Array.from(r.labels ?? []));
      if (found && !expected) expected = { ...found, answered };
    }
    return { refused: undefined, answered, requests: Math.ceil(stream.length / IMAGE_SIZE / batch), expected };
  }

  async function expectFlaggedAsByOne(key: (typeof KEYS)[number], stream: Uint8Array, batch: number, by: string) {
    const run = await spreadUntilRefused(key, stream, batch, [replicas[0], replicas[2]]);
    expect(run.refused).toMatchObject({ status: 403, code: 'extraction_suspected' });
    expect(run.expected?.by).toBe(by);
    // Refused right after the request that made the lone detector flag the key…
    expect(run.answered).toBe(run.expected!.answered);
    const record = JSON.parse((await db.hget('tl:detections', key.id)) ?? '{}') as DetectionRecord;
    // …with its evidence: the queries it counted, its W (PRADA) or matches (Blacklight).
    expect(record).toMatchObject({ keyId: key.id, by, queries: run.expected!.queries, action: 'block' });
    if (by === 'prada') expect(record.w).toBeCloseTo(run.expected!.w, 5);
    else expect(record.matches).toBe(run.expected!.matches);
    // More queries than either replica was sent: a replica watching only its own would not have had them.
    expect(record.queries).toBeGreaterThan(Math.ceil(run.requests / 2) * batch);
    const events = auditEvents().filter((e) => e.event === 'extraction_suspected' && e.keyId === key.id);
    expect(events).toHaveLength(1); // recorded once, by the replica whose request crossed the threshold
    expect(await charged(key.id)).toBe(run.answered); // the refusal charged nothing
  }

  it('an extraction stream spread over two replicas is flagged at the same query as on one (PRADA)', async () => {
    const stream = signAugmentedStream().pixels; // labels: the replicas'
    await expectFlaggedAsByOne(KEYS[3], stream, 25, 'prada');
  });

  it('near-duplicate probes spread over two replicas are flagged at the same query as on one (Blacklight)', async () => {
    const image = loadMnist('test').pixels.subarray(500 * IMAGE_SIZE, 501 * IMAGE_SIZE);
    const stream = new Uint8Array(8 * IMAGE_SIZE);
    for (let i = 0; i < 8; i++) {
      stream.set(image, i * IMAGE_SIZE);
      const p = i * IMAGE_SIZE + 300 + i; // one pixel nudged: the same fingerprint, a new query
      stream[p] = stream[p] === 255 ? 254 : stream[p] + 1;
    }
    await expectFlaggedAsByOne(KEYS[4], stream, 1, 'blacklight');
  });

  it('a replica SIGKILLed under load: the others serve on, every answer is audited, nothing is charged twice', async () => {
    const key = KEYS[1];
    const killed = replicas[1];
    const answers: { requestId: string; payload: string }[] = [];
    let afterKill = 0;
    let dead = false;
    const deadline = Date.now() + 60_000;
    // Each client keeps sending until it has had 3 answers after the kill, however fast the machine is.
    const clients = Array.from({ length: CLIENTS }, async (_, c) => {
      let mineAfterKill = 0;
      for (let n = 0; mineAfterKill < 3 && Date.now() < deadline; n++) {
        // One logical request: retried on the next replica with the same Idempotency-Key until answered.
        const body = images(BATCH);
        const idem = randomUUID();
        for (let attempt = 0; ; attempt++) {
          const target = replicas[(c + n + attempt) % 3];
          try {
            const r = await send(target.url, key.key, body, idem);
            expect(r.status).toBe(200);
            answers.push({ requestId: r.requestId ?? '', payload: idem });
            if (dead) {
              afterKill++;
              mineAfterKill++;
            }
            break;
          } catch {
            expect(target).toBe(killed); // only the killed replica may fail to answer
          }
        }
      }
    });
    // Kill it under load: once every client has had a couple of answers (not after a fixed time).
    while (answers.length < 2 * CLIENTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    process.kill(killed.pid, 'SIGKILL');
    dead = true;
    await Promise.all(clients);
    expect(afterKill).toBeGreaterThan(0);
    const audit = auditEntries().filter((e) => e.keyId === key.id);
    const audited = new Set(audit.filter((e) => e.outcome === 'answered' || e.outcome === 'replayed').map((e) => e.requestId));
    for (const a of answers) expect(audited.has(a.requestId)).toBe(true);
    // Every logical request was answered once and charged once (a retry of one the killed replica
    // charged is a free replay); Redis's count equals the audited charges.
    expect(new Set(answers.map((a) => a.payload)).size).toBe(answers.length);
    const chargedInAudit = audit.filter((e) => e.outcome === 'answered');
    expect(new Set(chargedInAudit.map((e) => e.payloadSha256)).size).toBe(chargedInAudit.length);
    const auditedImages = chargedInAudit.reduce((s, e) => s + e.images, 0);
    const inRedis = await charged(key.id);
    // Every answered request was paid for; beyond that only the batches in flight on the killed replica.
    expect(inRedis).toBeGreaterThanOrEqual(answers.length * BATCH);
    expect(inRedis).toBeLessThanOrEqual((answers.length + CLIENTS) * BATCH);
    // Only a batch the killed replica charged but had not yet audited may be missing from the logs.
    expect(inRedis - auditedImages).toBeGreaterThanOrEqual(0);
    expect(inRedis - auditedImages).toBeLessThanOrEqual(CLIENTS * BATCH);
  });

  it('a replica killed the moment its charge reached Redis: a retry on another replica is a free replay', async () => {
    // Had the charge and the Idempotency-Key record been two commands, the record would be lost with
    // the replica: the retry would wait out the dead replica's claim and then be charged again.
    const key = KEYS[5];
    const killed = replicas[2];
    const body = images(BATCH);
    let scripts = 0;
    // The second script naming the key's budget is the charge (the first is the reservation).
    proxy.arm(
      (args) => /^eval/i.test(args[0] ?? '') && args.includes(`tl:used:${key.id}`) && ++scripts === 2,
      () => process.kill(killed.pid, 'SIGKILL'),
    );
    await expect(send(killed.url, key.key, body, 'cut-request')).rejects.toThrow(); // no answer came back
    for (let i = 0; (await charged(key.id)) === 0 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await charged(key.id)).toBe(BATCH);
    const retry = await send(replicas[0].url, key.key, body, 'cut-request');
    expect(retry).toMatchObject({ status: 200, replayed: true });
    expect(retry.labels).toHaveLength(BATCH);
    expect(await charged(key.id)).toBe(BATCH);
    // The replica died before auditing its answer; the replay is audited on the replica that served it.
    expect(auditEntries().filter((e) => e.keyId === key.id).map((e) => e.outcome)).toEqual(['replayed']);
  });
});
