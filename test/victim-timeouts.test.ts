import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import type { AuditEntry } from '../victim/store/audit.js';
import { NODE_TS, ROOT } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { labelHead, rawExchange } from './raw-http.js';
import { ledgerTotal, readJsonl, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * Each of the victim's connection timeouts, set small through its CLI flags so they can be watched
 * firing: headers, whole request (a slow body) and idle keep-alive.
 */
const KEY = 'timeout-secret-0123456789abcdef';
const image = Buffer.from(loadMnist('test').pixels.subarray(0, IMAGE_SIZE));
const TIMEOUTS = ['--headers-timeout', '0.5', '--request-timeout', '1', '--keep-alive-timeout', '0.5'];
let root: string;
let victim: KeyedVictim;

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  root = mkdtempSync(join(tmpdir(), 'transferlab-timeouts-'));
  victim = await startKeyedVictim({ dir: root, model: modelDir, backend, keys: [{ id: 'slow', key: KEY, budget: 1000 }], rateLimit: 0, args: ['--log-level', 'silent', ...TIMEOUTS] });
});

afterAll(async () => {
  await victim?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** The body in `n` pieces, `everyMs` apart after the head: a client that trickles its upload. */
function trickled(n: number) {
  const size = Math.ceil(image.length / n);
  return Array.from({ length: n }, (_, i) => image.subarray(i * size, (i + 1) * size));
}

describe('connection timeouts (CLI flags, small values)', () => {
  it('prints the timeouts it applies', () => {
    expect(victim.output()).toContain('timeouts: headers 0.5 s, whole request 1 s, idle keep-alive 0.5 s');
  });

  it('headers not finished within --headers-timeout: 408 and close', async () => {
    const got = await rawExchange(victim.url, Buffer.from('POST /v1/label HTTP/1.1\r\nHost: victim\r\nX-Slow: '), { waitMs: 3000 });
    expect(got.status).toBe(408);
    expect(got.body?.error?.code).toBe('request_timeout');
    expect(got.body?.error?.message).toContain('headers within 0.5 s');
    expect(got.ms).toBeGreaterThan(400);
    expect(got.ms).toBeLessThan(1500);
  });

  it('a body trickled past --request-timeout: 408 at that time, nothing charged, audited as the 408 it got', async () => {
    const head = Buffer.from(labelHead(KEY, [`Content-Length: ${image.length}`]));
    // 40 pieces 100 ms apart would take 4 s; the request timeout is 1 s.
    const got = await rawExchange(victim.url, head, { trickle: { pieces: trickled(40), everyMs: 100 }, waitMs: 5000 });
    expect(got.status).toBe(408);
    expect(got.body?.error?.message).toContain('whole request within 1 s');
    expect(got.ms).toBeGreaterThan(900);
    expect(got.ms).toBeLessThan(2000);
    const audited = () => readJsonl<AuditEntry>(victim.files.audit).filter((e) => e.keyId === 'slow' && e.status === 408);
    for (let i = 0; i < 40 && audited().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(audited().map((e) => [e.outcome, e.code, e.images])).toEqual([['rejected', 'request_timeout', 0]]);
    expect(ledgerTotal(victim.files.ledger, 'slow')).toBe(0);
  });

  it('a slow body that finishes within --request-timeout is labelled', async () => {
    const head = Buffer.from(labelHead(KEY, [`Content-Length: ${image.length}`]));
    const got = await rawExchange(victim.url, head, { trickle: { pieces: trickled(4), everyMs: 100 }, waitMs: 5000 });
    expect(got.status).toBe(200);
    expect(got.body?.labels).toHaveLength(1);
  });

  it('an idle keep-alive connection is closed 1 s after --keep-alive-timeout', async () => {
    const { hostname, port } = new URL(victim.url);
    const { answeredAt, closedAt } = await new Promise<{ answeredAt: number; closedAt: number }>((resolve, reject) => {
      let answeredAt = 0;
      const socket = connect(Number(port), hostname, () => socket.write('GET /v1/health HTTP/1.1\r\nHost: victim\r\n\r\n'));
      socket.on('data', () => (answeredAt ||= performance.now()));
      socket.on('close', () => resolve({ answeredAt, closedAt: performance.now() }));
      socket.on('error', reject);
      socket.setTimeout(5000, () => socket.destroy(new Error('the idle connection was not closed within 5 s')));
    });
    expect(answeredAt).toBeGreaterThan(0);
    // Node (20 and later) closes 1 s after the timeout it advertises in Keep-Alive: timeout=N, so
    // that a client honouring the header always closes first.
    expect(closedAt - answeredAt).toBeGreaterThan(1400);
    expect(closedAt - answeredAt).toBeLessThan(2200);
  });

  it('refuses a headers timeout longer than the request timeout, naming both flags', () => {
    const run = spawnSync(NODE_TS[0], [...NODE_TS.slice(1), join(ROOT, 'victim/cli.ts'), '--headers-timeout', '20', '--request-timeout', '10'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('--headers-timeout (20 s) must not exceed --request-timeout (10 s)');
  });
});
