import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { ensureTestVictim } from './fixtures.js';
import { labelHead, malformedBodies, openSockets, rawExchange, rssMiB, settlesTo } from './raw-http.js';
import type { AuditEntry } from '../victim/store/audit.js';
import { ledgerTotal, readJsonl, type KeyedVictim, startKeyedVictim } from './victim-client.js';

/**
 * Malformed bodies must be answered (or their connection closed) at once, charge nothing and free
 * their connection — one at a time, and 500 at once while well-formed clients keep being served.
 */
const ALICE = 'alice-secret-0123456789abcdef';
const BOB = 'bob-secret-0123456789abcdef';
const pixels = loadMnist('test').pixels;
let root: string;
let victim: KeyedVictim;

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  root = mkdtempSync(join(tmpdir(), 'transferlab-malformed-'));
  victim = await startKeyedVictim({ dir: root, model: modelDir, backend, keys: { alice: ALICE, bob: BOB }, budget: 100_000, rateLimit: 0, args: ['--log-level', 'silent'] });
});

afterAll(async () => {
  await victim?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** One well-formed uint8 request on its own connection (no keep-alive pool to blur the socket count). */
function labelOnce(url: string, first: number, count: number): Promise<{ status: number; labels?: number[] }> {
  const body = Buffer.from(pixels.subarray(first * IMAGE_SIZE, (first + count) * IMAGE_SIZE));
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/label`, {
      method: 'POST',
      agent: false,
      headers: { Authorization: `Bearer ${BOB}`, 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, Connection: 'close' },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, labels: (JSON.parse(text) as { labels?: number[] }).labels }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('malformed bodies never hold a connection', () => {
  it('each gets its 4xx within a second, charges nothing and frees its connection', async () => {
    const baseline = openSockets(victim.pid);
    const statuses: number[] = [];
    for (const m of malformedBodies(ALICE, pixels)) {
      const got = await rawExchange(victim.url, m.bytes, { halfClose: m.halfClose, waitMs: 1000 });
      statuses.push(got.status ?? 0);
      expect({ case: m.name, answeredOrClosed: got.status !== undefined || got.closed }).toEqual({ case: m.name, answeredOrClosed: true });
      if (got.status !== undefined) {
        expect(got.status).toBeGreaterThanOrEqual(400);
        expect(got.status).toBeLessThan(500);
        expect(got.body?.error?.code).toBe('bad_request');
        expect(got.body?.error?.message).toContain('nothing was charged');
      }
    }
    // The audit log records what each client got, never an answer nobody received.
    const audited = () => readJsonl<AuditEntry>(victim.files.audit).filter((e) => e.keyId === 'alice');
    for (let i = 0; i < 40 && audited().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(audited().map((e) => [e.outcome, e.status, e.images])).toEqual(statuses.map((s) => ['rejected', s, 0]));
    expect(await settlesTo(() => openSockets(victim.pid), baseline, 2000)).toBeLessThanOrEqual(baseline);
    expect(ledgerTotal(victim.files.ledger, 'alice')).toBe(0);
  });

  it('a valid request pipelined before a malformed body gets its labels first, then the 400', async () => {
    const image = Buffer.from(pixels.subarray(0, IMAGE_SIZE * 3));
    const valid = Buffer.concat([Buffer.from(labelHead(BOB, [`Content-Length: ${image.length}`])), image]);
    const broken = malformedBodies(BOB, pixels)[0].bytes;
    const chargedBefore = ledgerTotal(victim.files.ledger, 'bob');
    const { hostname, port } = new URL(victim.url);
    const text = await new Promise<string>((resolve, reject) => {
      let got = '';
      const socket = connect(Number(port), hostname, () => socket.write(Buffer.concat([valid, broken])));
      socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
      socket.setTimeout(3000, () => socket.destroy(new Error(`no close within 3 s; got:\n${got.slice(0, 300)}`)));
    });
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 400]);
    expect(text).toContain('invalid chunk size');
    expect(ledgerTotal(victim.files.ledger, 'bob') - chargedBefore).toBe(3);
  });

  it('500 at once: every one answered, well-formed clients still served correctly, sockets back to baseline', async () => {
    // The labels each image gets when the service is quiet, to check the answers under load against.
    const reference = await labelOnce(victim.url, 0, 80);
    expect(reference.status).toBe(200);
    const chargedBefore = ledgerTotal(victim.files.ledger, 'bob');
    const baseline = openSockets(victim.pid);
    const rssBefore = rssMiB(victim.pid);

    const kinds = malformedBodies(ALICE, pixels);
    const storm = Promise.all(
      Array.from({ length: 500 }, (_, i) => {
        const m = kinds[i % kinds.length];
        return rawExchange(victim.url, m.bytes, { halfClose: m.halfClose, waitMs: 10_000 });
      }),
    );
    // 8 well-formed clients, 10 requests each of 1 image, while the storm is on.
    const wellFormed = Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        const answers = [];
        for (let r = 0; r < 10; r++) answers.push({ image: c * 10 + r, ...(await labelOnce(victim.url, c * 10 + r, 1)) });
        return answers;
      }),
    );
    const [malformed, served] = await Promise.all([storm, wellFormed]);

    const unanswered = malformed.filter((o) => o.status === undefined && !o.closed).length;
    expect(unanswered).toBe(0);
    expect(malformed.filter((o) => o.status !== undefined && (o.status < 400 || o.status >= 500))).toEqual([]);
    for (const a of served.flat()) expect([a.status, a.labels]).toEqual([200, [reference.labels![a.image]]]);
    expect(ledgerTotal(victim.files.ledger, 'alice')).toBe(0);
    expect(ledgerTotal(victim.files.ledger, 'bob') - chargedBefore).toBe(80);
    expect(await settlesTo(() => openSockets(victim.pid), baseline, 3000)).toBeLessThanOrEqual(baseline);
    // 500 connections' buffers must not stay behind (generous: GC need not have run).
    expect(rssMiB(victim.pid) - rssBefore).toBeLessThan(64);
  });
});
