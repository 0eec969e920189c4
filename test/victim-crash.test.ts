import { request } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import type { AuditEntry } from '../victim/store/audit.js';
import { ensureTestVictim } from './fixtures.js';
import { bearer, exited, keyedVictimFiles, labelUint8, ledgerTotal, readJsonl, startKeyedVictim, type TestVictim } from './victim-client.js';

/** Durability: kill -9 under load loses no answered request, and budgets carry over a restart. */
const KEY = 'dave-secret-0123456789abcdef';
let dir: string;
let modelDir: string;
let backend: string;
let victim: TestVictim | undefined;
const pixels = loadMnist('test').pixels;
const paths = () => keyedVictimFiles(dir);
const start = () => startKeyedVictim({ dir, model: modelDir, backend, keys: [{ id: 'dave', key: KEY, budget: 1_000_000 }], rateLimit: 0 });

beforeAll(async () => {
  modelDir = await ensureTestVictim();
  backend = (await initBackend()).backend;
  dir = mkdtempSync(join(tmpdir(), 'transferlab-victim-crash-'));
});

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('victim durability', () => {
  it('kill -9 under load: every answered request is audited; the budget continues from the ledger', async () => {
    victim = await start();
    const answered = new Map<string, number>(); // request id → images
    let maxUsed = 0;
    let stop = false;
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        const size = 1 + ((c + i) % 9);
        try {
          const r = await labelUint8(victim!.url, pixels.subarray(i * IMAGE_SIZE, (i + size) * IMAGE_SIZE), bearer(KEY));
          if (r.status !== 200) throw new Error(`unexpected ${r.status} ${JSON.stringify(r.body)}`);
          answered.set(r.headers.get('x-request-id')!, size);
          maxUsed = Math.max(maxUsed, r.body.budget!.used);
        } catch (e) {
          if (!stop) throw e;
        }
      }
    };
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    while (answered.size < 150) await new Promise((r) => setTimeout(r, 20));
    process.kill(victim.pid, 'SIGKILL');
    stop = true;
    await Promise.allSettled(clients);
    await victim.stop(); // reaps the process (or a wrapper around it)
    victim = undefined;

    const audited = new Map(readJsonl<AuditEntry>(paths().audit).filter((e) => e.outcome === 'answered').map((e) => [e.requestId, e]));
    const missing = [...answered.keys()].filter((id) => !audited.has(id));
    expect(missing).toEqual([]);
    for (const [id, images] of answered) expect(audited.get(id)!.images).toBe(images);
    // Charges are made durable before the audit line and the answer, so the ledger covers all of them.
    const charged = ledgerTotal(paths().ledger, 'dave');
    const auditedImages = [...audited.values()].reduce((s, e) => s + e.images, 0);
    expect(charged).toBeGreaterThanOrEqual(auditedImages);
    expect(auditedImages).toBeGreaterThanOrEqual(maxUsed);
    expect(existsSync(`${paths().ledger}.lock`)).toBe(true); // left behind by the killed process

    victim = await start(); // takes over the dead process's lock
    expect(victim.output()).toContain(`(${charged} images charged so far)`);
    const r = await labelUint8(victim.url, pixels.subarray(0, 3 * IMAGE_SIZE), bearer(KEY));
    expect(r.status).toBe(200);
    expect(r.body.budget).toEqual({ used: charged + 3, limit: 1_000_000 });
  });

  it('refuses a second victim on the same ledger', async () => {
    await expect(start()).rejects.toThrow(/ledger_locked/);
  });

  it('SIGTERM: finishes a request in flight, then exits 0', async () => {
    const running = victim!;
    const body = Buffer.from(pixels.subarray(0, 4 * IMAGE_SIZE));
    const url = new URL(`${running.url}/v1/label`);
    const reply = new Promise<{ status: number; connection?: string; text: string }>((resolve, reject) => {
      const req = request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length, ...bearer(KEY) } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, text }));
        },
      );
      req.on('error', reject);
      // Half the body now, so the request is in flight when the signal lands; the rest after it.
      req.write(body.subarray(0, body.length / 2));
      setTimeout(() => {
        process.kill(running.pid, 'SIGTERM');
        setTimeout(() => req.end(body.subarray(body.length / 2)), 300);
      }, 200);
    });
    const r = await reply;
    expect(r.status).toBe(200);
    expect(r.connection).toBe('close');
    expect((JSON.parse(r.text) as { labels: number[] }).labels).toHaveLength(4);
    expect(await exited(running)).toBe(0);
    victim = undefined;
    expect(existsSync(`${paths().ledger}.lock`)).toBe(false);
    const last = readJsonl<AuditEntry>(paths().audit).at(-1)!;
    expect([last.outcome, last.images]).toEqual(['answered', 4]);
  });
});
