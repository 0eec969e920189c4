import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel } from '../shared/model/architectures.js';
import { initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE } from '../shared/datasets/index.js';
import { fromLayers } from '../shared/model/model.js';
import { JsonlLog } from '../shared/jsonl-log.js';
import type { InputShape } from '../shared/protocol/index.js';
import { createApp } from '../victim/http/app.js';
import { MemoryAuditLog } from '../victim/store/audit.js';
import { MicroBatcher, modelLabeler } from '../victim/http/batcher.js';
import { parseBinaryBatch, parseJsonBatch } from '../victim/http/inputs.js';
import { KeyRing } from '../victim/store/keys.js';
import { BudgetBook, type LedgerRecord } from '../victim/store/ledger.js';
import { startServer } from '../victim/http/server.js';
import { bearer, call, labelUint8 } from './victim-client.js';

const MNIST: InputShape = [28, 28, 1];

/** In-process checks of the victim's parts, with fakes where a real model would only slow things down. */
let dir: string;
beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-victim-units-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const memoryStore = () => {
  const records: LedgerRecord[] = [];
  return { records, append: async (r: LedgerRecord) => void records.push(r) };
};

describe('budgets', () => {
  it('reserves synchronously, refuses a whole batch that does not fit, releases on failure', async () => {
    const store = memoryStore();
    const book = new BudgetBook(store, new Map([['alice', 5]]));
    const alice = { id: 'alice', limit: 10 };
    const a = book.reserve(alice, 3);
    const b = book.reserve(alice, 2); // 5 used + 5 held: full
    expect(() => book.reserve(alice, 1)).toThrow(/budget/);
    book.release(b);
    expect(await book.commit(a)).toBe(8);
    expect(() => book.reserve(alice, 3)).toThrow(expect.objectContaining({ code: 'budget_exhausted', status: 429 }));
    expect(await book.commit(book.reserve(alice, 2))).toBe(10);
    expect(store.records.map((r) => r.images)).toEqual([3, 2]);
    expect(await book.commit(book.reserve({ id: 'open', limit: null }, 1e6))).toBe(1e6);
  });

  it('a charge whose ledger write fails is refused with ledger_unavailable and stays counted', async () => {
    const book = new BudgetBook({ append: () => Promise.reject(new Error('disk full')) });
    const who = { id: 'x', limit: 10 };
    await expect(book.commit(book.reserve(who, 4))).rejects.toMatchObject({ code: 'ledger_unavailable', status: 503 });
    expect(book.used('x')).toBe(4);
  });
});

describe('append-only logs', () => {
  it('group-commits appends from one turn and replays them', async () => {
    const path = join(dir, 'group.jsonl');
    const { log } = JsonlLog.open(path, { torn: 'drop' });
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append({ i })));
    log.close();
    expect(JsonlLog.open(path, { torn: 'drop' }).records).toHaveLength(50);
  });

  it('drops (ledger) or marks (audit) a torn last line the same way on every open, and refuses a corrupt middle line', () => {
    const mark = (fragment: Buffer) => ({ event: 'torn_tail', fragment: fragment.toString('utf8') });
    for (const torn of ['drop', mark] as const) {
      const path = join(dir, `torn-${torn === 'drop' ? 'drop' : 'mark'}.jsonl`);
      writeFileSync(path, '{"a":1}\n{"a":2}\n{"a":');
      const first = JsonlLog.open(path, { torn });
      first.log.close();
      expect(first.records).toEqual([{ a: 1 }, { a: 2 }]);
      expect(first.tornTail?.toString('utf8')).toBe('{"a":');
      const repaired = torn === 'drop' ? '{"a":1}\n{"a":2}\n' : '{"a":1}\n{"a":2}\n{"event":"torn_tail","fragment":"{\\"a\\":"}\n';
      expect(readFileSync(path, 'utf8')).toBe(repaired);
      // The repaired file opens cleanly again and again.
      for (let i = 0; i < 2; i++) {
        const again = JsonlLog.open(path, { torn });
        again.log.close();
        expect(again.tornTail).toBeUndefined();
      }
      expect(readFileSync(path, 'utf8')).toBe(repaired);
    }
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"a":1}\nnot json\n{"a":2}\n');
    expect(() => JsonlLog.open(bad, { torn: 'drop' })).toThrow(expect.objectContaining({ code: 'log_corrupt' }));
  });

  it('appendNow is on disk when it returns, together with pending appends', async () => {
    const path = join(dir, 'now.jsonl');
    const { log } = JsonlLog.open(path, { torn: 'drop' });
    const pending = log.append({ i: 0 });
    log.appendNow([{ i: 1 }, { i: 2 }]);
    expect(readFileSync(path, 'utf8')).toBe('{"i":0}\n{"i":1}\n{"i":2}\n');
    await pending;
    log.close();
    expect(() => log.appendNow([{ i: 3 }])).toThrow(expect.objectContaining({ code: 'log_closed' }));
  });

  it('a group commit is on disk when it resolves, its fsync off the thread; close waits for a sync in flight', async () => {
    const path = join(dir, 'off-thread.jsonl');
    const { log } = JsonlLog.open(path, { torn: 'drop' });
    const both = [log.appendAll([{ i: 0 }, { i: 1 }]), log.append({ i: 2 })];
    expect(readFileSync(path, 'utf8')).toBe(''); // one write for the turn, after it
    await Promise.all(both);
    expect(readFileSync(path, 'utf8')).toBe('{"i":0}\n{"i":1}\n{"i":2}\n');
    const last = log.append({ i: 3 });
    await new Promise((r) => setImmediate(r)); // written; its fsync may still be running
    log.close();
    await last;
    expect(readFileSync(path, 'utf8')).toBe('{"i":0}\n{"i":1}\n{"i":2}\n{"i":3}\n');
    await expect(log.append({ i: 4 })).rejects.toMatchObject({ code: 'log_closed' });
  });
});

describe('keys', () => {
  it('authenticates by constant-time digest comparison', () => {
    const ring = new KeyRing([{ id: 'a', key: 'a'.repeat(20), budget: 5 }, { id: 'b', key: 'b'.repeat(20) }], 7);
    expect(ring.authenticate('a'.repeat(20))).toEqual({ id: 'a', limit: 5 });
    expect(ring.authenticate('b'.repeat(20))).toEqual({ id: 'b', limit: 7 });
    expect(ring.authenticate('a'.repeat(19))).toBeUndefined();
  });

  it('rejects bad keys files without echoing secrets', () => {
    const cases = [
      { keys: [{ id: 'a', key: 'short-secret' }] },
      { keys: [{ id: 'a', key: 'x'.repeat(20) }, { id: 'a', key: 'y'.repeat(20) }] },
      { keys: [{ id: 'a', key: 'z'.repeat(20) }, { id: 'b', key: 'z'.repeat(20) }] },
      { keys: [{ id: 'a', key: 'w'.repeat(20), budget: -1 }] },
      { keys: [] },
    ];
    for (const c of cases) {
      const path = join(dir, 'keys.json');
      writeFileSync(path, JSON.stringify(c));
      let message = '';
      try {
        KeyRing.fromFile(path);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/keys file/);
      for (const k of c.keys) expect(message).not.toContain(k.key);
    }
  });
});

describe('input parsing', () => {
  it('reads JSON, uint8 and float32 bodies into the same pixels', () => {
    const px = Uint8Array.from({ length: 2 * IMAGE_SIZE }, (_, i) => (i * 7) % 256);
    const floats = Float32Array.from(px, (p) => p / 255);
    const fromJson = parseJsonBatch(Buffer.from(JSON.stringify({ inputs: [Array.from(floats.subarray(0, IMAGE_SIZE)), Array.from(floats.subarray(IMAGE_SIZE))] })), MNIST, 10);
    const fromU8 = parseBinaryBatch(Buffer.from(px), 'uint8', MNIST, 10);
    const fromF32 = parseBinaryBatch(Buffer.from(floats.buffer), 'float32', MNIST, 10);
    for (const b of [fromJson, fromU8, fromF32]) {
      expect(b.count).toBe(2);
      expect(b.images).toEqual(floats);
    }
  });

  it('reads an RGB image flat, nested [h][w][c] and as uint8 bytes, all row-major HWC', () => {
    const shape: InputShape = [2, 3, 3];
    const px = Uint8Array.from({ length: 18 }, (_, i) => i * 13);
    const floats = Float32Array.from(px, (p) => p / 255);
    const nested = [0, 1].map((y) => [0, 1, 2].map((x) => [0, 1, 2].map((k) => floats[(y * 3 + x) * 3 + k])));
    const flat = parseJsonBatch(Buffer.from(JSON.stringify({ inputs: [Array.from(floats)] })), shape, 4);
    const deep = parseJsonBatch(Buffer.from(JSON.stringify({ inputs: [nested] })), shape, 4);
    const bytes = parseBinaryBatch(Buffer.from(px), 'uint8', shape, 4);
    for (const b of [flat, deep, bytes]) expect(b.images).toEqual(floats);
    // A nested image of the wrong width names where it went wrong.
    expect(() => parseJsonBatch(Buffer.from(JSON.stringify({ inputs: [[nested[0], nested[1].slice(1)]] })), shape, 4)).toThrow(/inputs\[0\]\[1\] is an array of 2/);
    expect(() => parseBinaryBatch(Buffer.alloc(17), 'uint8', shape, 4)).toThrow(/one uint8 image is 18 bytes, 2×3×3/);
  });

  it('reads a grey-scale image nested [h][w]', () => {
    const floats = Float32Array.from({ length: IMAGE_SIZE }, (_, i) => (i % 256) / 255);
    const rows = Array.from({ length: 28 }, (_, y) => Array.from(floats.subarray(y * 28, y * 28 + 28)));
    expect(parseJsonBatch(Buffer.from(JSON.stringify({ inputs: [rows] })), MNIST, 1).images).toEqual(floats);
  });
});

describe('micro-batching', () => {
  it('runs concurrent requests as one model call and splits the labels back', async () => {
    const calls: number[] = [];
    // Fake model: the label of an image is its first pixel × 10.
    const batcher = new MicroBatcher((images, count) => {
      calls.push(count);
      return Int32Array.from({ length: count }, (_, i) => Math.round(images[i * IMAGE_SIZE] * 10));
    });
    const request = (first: number, count: number) => {
      const x = new Float32Array(count * IMAGE_SIZE);
      for (let i = 0; i < count; i++) x[i * IMAGE_SIZE] = (first + i) / 10;
      return batcher.label(x, count);
    };
    const results = await Promise.all([request(0, 3), request(3, 1), request(4, 5)]);
    expect(calls).toEqual([9]);
    expect(results.map((r) => Array.from(r))).toEqual([[0, 1, 2], [3], [4, 5, 6, 7, 8]]);
    await batcher.idle();
  });

  it('flushes at maxImages, rejects every request of a failed call, and keeps serving', async () => {
    const calls: number[] = [];
    let fail = true;
    const batcher = new MicroBatcher(
      (_x, count) => {
        calls.push(count);
        if (fail) throw new Error('model broke');
        return new Int32Array(count);
      },
      { maxImages: 4, maxDelayMs: 0 },
    );
    const one = () => batcher.label(new Float32Array(IMAGE_SIZE * 2), 2);
    const failed = await Promise.allSettled([one(), one(), one()]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    fail = false;
    await expect(one()).resolves.toHaveLength(2);
    expect(calls).toEqual([4, 2, 2]);
  });

  it('leaks no tensors running a real model', async () => {
    const model = buildModel('lenet');
    const batcher = new MicroBatcher(modelLabeler(fromLayers(model)));
    await batcher.label(new Float32Array(IMAGE_SIZE), 1); // weights and kernels set up
    const before = tf.memory().numTensors;
    const labels = await Promise.all(Array.from({ length: 8 }, () => batcher.label(new Float32Array(5 * IMAGE_SIZE).fill(0.3), 5)));
    expect(labels.every((l) => l.length === 5)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('the HTTP app in-process (fake model)', () => {
  it('rate-limits per key with Retry-After, and a failed model call charges nothing', async () => {
    const audit = new MemoryAuditLog();
    const store = memoryStore();
    let broken = false;
    const app = createApp({
      label: async (_x, count) => {
        if (broken) throw new Error('boom');
        return new Int32Array(count).fill(7);
      },
      keys: new KeyRing([{ id: 'k', key: 'k'.repeat(20), budget: 100 }, { id: 'm', key: 'm'.repeat(20), budget: 100 }]),
      budgets: new BudgetBook(store),
      audit,
      maxBatch: 10,
      rateLimit: 3,
    });
    const server = await startServer(app, '127.0.0.1', 0);
    try {
      const px = new Uint8Array(2 * IMAGE_SIZE);
      const replies = [];
      for (let i = 0; i < 4; i++) replies.push(await labelUint8(server.url, px, bearer('k'.repeat(20))));
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 429]);
      expect(replies[0].body).toEqual({ labels: [7, 7], budget: { used: 2, limit: 100 } });
      expect(replies[3].body.error?.code).toBe('rate_limited');
      expect(Number(replies[3].headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Another key has its own allowance.
      expect((await labelUint8(server.url, px, bearer('m'.repeat(20)))).status).toBe(200);

      broken = true;
      const failed = await labelUint8(server.url, px, bearer('m'.repeat(20)));
      expect([failed.status, failed.body.error?.code]).toEqual([500, 'model_failed']);
      broken = false;
      const after = await labelUint8(server.url, px, bearer('m'.repeat(20)));
      expect(after.body.budget).toEqual({ used: 4, limit: 100 });
      expect(store.records.filter((r) => r.key === 'm').map((r) => r.images)).toEqual([2, 2]);
      expect(audit.entries.map((e) => e.outcome)).toEqual(['answered', 'answered', 'answered', 'rejected', 'answered', 'failed', 'answered']);
      expect((await call(`${server.url}/v1/info`)).body).toMatchObject({ maxBatch: 10, output: 'label' });
    } finally {
      await server.close();
    }
  });

  it('an open service shares --budget among all callers', async () => {
    const app = createApp({
      label: async (_x, count) => new Int32Array(count),
      anonymousBudget: 3,
      budgets: new BudgetBook(memoryStore()),
      audit: new MemoryAuditLog(),
      maxBatch: 10,
      rateLimit: 0,
    });
    const server = await startServer(app, '127.0.0.1', 0);
    try {
      const px = new Uint8Array(2 * IMAGE_SIZE);
      expect((await labelUint8(server.url, px)).body.budget).toEqual({ used: 2, limit: 3 });
      const refused = await labelUint8(server.url, px);
      expect([refused.status, refused.body.error?.code]).toEqual([429, 'budget_exhausted']);
      expect((await labelUint8(server.url, px.subarray(0, IMAGE_SIZE))).body.budget).toEqual({ used: 3, limit: 3 });
    } finally {
      await server.close();
    }
  });
});
