import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../victim/audit.js';
import { ensureTestVictim } from './fixtures.js';
import { REDIS_SERVER, haveRedis, startRedis, type TestRedis } from '../scripts/redis-server.js';
import { startVictim, type TestVictim } from './victim-client.js';

/**
 * Three real victim replicas on one real Redis (AOF, fsync always): budgets, Idempotency-Key
 * records and charges are shared, each replica keeps its own audit log. 16 clients race one
 * budget through all three; a replica is SIGKILLed under load; one Idempotency-Key is sent to two
 * replicas. Redis's count, the audit logs and the clients' own tally must agree.
 */
const KEYS = [
  { id: 'racer', key: 'k-racer-0123456789', budget: 1000 },
  { id: 'steady', key: 'k-steady-0123456789', budget: 1_000_000 },
  { id: 'twice', key: 'k-twice-0123456789', budget: 1000 },
];
const BATCH = 7;
const CLIENTS = 16;

let redis: TestRedis;
let db: Redis;
let dir: string;
const replicas: TestVictim[] = [];

interface Sent {
  status: number;
  requestId: string | null;
  replayed: boolean;
  code?: string;
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
  const json = (await res.json()) as { error?: { code: string } };
  return { status: res.status, requestId: res.headers.get('x-request-id'), replayed: res.headers.get('idempotent-replayed') === 'true', code: json.error?.code };
}

const images = (n: number) => randomBytes(n * 784);

function auditEntries(): AuditEntry[] {
  return replicas.flatMap((_, i) => {
    const path = join(dir, `audit-r${i}.jsonl`);
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as AuditEntry)
      .filter((e) => 'requestId' in e);
  });
}

const charged = async (keyId: string) => Number((await db.get(`tl:used:${keyId}`)) ?? 0);

beforeAll(async () => {
  if (!haveRedis) {
    console.warn(`skipped: no ${REDIS_SERVER} (Debian's redis-server; .ci/run installs it)`);
    return;
  }
  const model = await ensureTestVictim();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-replicas-'));
  redis = await startRedis({ durable: true });
  db = new Redis(redis.url);
  writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: KEYS }));
  const started = await Promise.all(
    [0, 1, 2].map((i) =>
      startVictim(
        ['--model', model, '--keys', join(dir, 'keys.json'), '--store', redis.url, '--replica-id', `r${i}`, '--audit-log', join(dir, `audit-r${i}.jsonl`), '--rate-limit', '0', '--log-level', 'warn'],
        'wasm',
      ),
    ),
  );
  replicas.push(...started);
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  db?.disconnect();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

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
    for (const i of [0, 1, 2]) expect(auditEntries().some((e) => e.keyId === key.id && e.outcome === 'answered' && readFileSync(join(dir, `audit-r${i}.jsonl`), 'utf8').includes(e.requestId))).toBe(true);
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
});
