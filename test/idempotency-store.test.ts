import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileIdempotencyStore } from '../victim/store/idempotency-file.js';
import { MemoryIdempotencyStore } from '../victim/store/idempotency.js';
import { idempotencyStoreContract } from './idempotency-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'transferlab-idempotency-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

describe('memory idempotency store', () => {
  idempotencyStoreContract(async (clock, ttlMs) => new MemoryIdempotencyStore({ clock, ttlMs }));
});

describe('file idempotency store', () => {
  idempotencyStoreContract(async (clock, ttlMs) => FileIdempotencyStore.open(join(dir, `contract-${files++}.jsonl`), { clock, ttlMs }).store);

  it('keeps records across a reopen, drops expired ones from the file and a torn tail', async () => {
    const path = join(dir, 'reopen.jsonl');
    let now = Date.parse('2026-01-01T00:00:00Z');
    const clock = () => new Date(now);
    const first = FileIdempotencyStore.open(path, { clock, ttlMs: 10_000 }).store;
    for (const [k, at] of [['old', 0], ['new', 5000]] as const) {
      now = Date.parse('2026-01-01T00:00:00Z') + at;
      const c = await first.replayOrClaim('alice', k, `body-${k}`);
      if (!('ticket' in c)) throw new Error('expected a ticket');
      await first.finish(c.ticket, Int32Array.from([at / 1000]));
    }
    await first.close();
    appendFileSync(path, '{"t":"2026-'); // a crash in the middle of a write

    now = Date.parse('2026-01-01T00:00:00Z') + 12_000; // 'old' expired at 10 s, 'new' lives until 15 s
    const reopened = FileIdempotencyStore.open(path, { clock, ttlMs: 10_000 });
    expect([reopened.restored, reopened.expired]).toEqual([1, 1]);
    expect(await reopened.store.replayOrClaim('alice', 'new', 'body-new')).toEqual({ labels: Int32Array.from([5]) });
    expect('ticket' in (await reopened.store.replayOrClaim('alice', 'old', 'body-old'))).toBe(true);
    await reopened.store.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { k: string }).k)).toEqual(['new']); // rewritten without the expired record
  });

  it('refuses a file with a line that is not an idempotency record, naming it', () => {
    const path = join(dir, 'bad.jsonl');
    appendFileSync(path, '{"t":"x"}\n');
    expect(() => FileIdempotencyStore.open(path)).toThrow(expect.objectContaining({ code: 'idempotency_log_corrupt', message: expect.stringContaining('line 1') }));
  });
});
