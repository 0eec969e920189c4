import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpOracle, isTransferlabError, loadDataset, memoryRunStore, queryAttack, startVictim, type RunningVictim } from '../lib/index.js';
import { ensureTestVictim } from './fixtures.js';

/**
 * The library's in-process victim (startVictim): the same label API as `transferlab victim`, over real
 * loopback HTTP, with its budget enforced and its ledger on disk when asked; close() stops it. The whole
 * journey through the installed package (train, serve, attack, read back) is .ci/package's example.
 */
describe('startVictim', () => {
  let victim: RunningVictim;
  let dir: string;
  const test = loadDataset('mnist').test;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'transferlab-library-'));
    victim = await startVictim({ model: await ensureTestVictim(), budget: 30, maxBatch: 20, stateDir: dir, backend: 'wasm' });
  });
  afterAll(async () => {
    await victim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('labels images over HTTP like the victim process, within its budget, charging the ledger', async () => {
    expect(victim.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(victim.format).toBe('transferlab');
    const oracle = await createHttpOracle({ url: victim.url });
    try {
      expect((await oracle.info()).classes).toBe(10);
      const labels = await oracle.label(test.images.subarray(0, 25 * 784), 25, 'measurement');
      const right = labels.filter((l, i) => l === test.labels[i]).length;
      expect(right).toBeGreaterThanOrEqual(20); // the test lenet is ~0.97 accurate
      // 25 of 30 paid: ten more images do not fit.
      const refused = await oracle.label(test.images.subarray(25 * 784, 35 * 784), 10, 'measurement').catch((e: unknown) => e);
      expect(isTransferlabError(refused) && refused.code).toBe('budget_exhausted');
    } finally {
      await oracle.close();
    }
    const charged = readFileSync(join(dir, 'ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { images: number });
    expect(charged.reduce((s, r) => s + r.images, 0)).toBe(25);
  });

  it('stops listening on close()', async () => {
    await victim.close();
    const after = await fetch(`${victim.url}/healthz`).catch((e: unknown) => e);
    expect(after).toBeInstanceOf(Error);
    victim = undefined as unknown as RunningVictim;
  });
});

describe('queryAttack', () => {
  it("spreads its requests over the keys file's keys, as the command does (none is ignored)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-library-keys-'));
    const keys = [{ id: 'a', key: 'sybil-a-0123456789' }, { id: 'b', key: 'sybil-b-0123456789' }];
    writeFileSync(join(dir, 'keys.txt'), keys.map((k) => k.key).join('\n'));
    const victim = await startVictim({ model: await ensureTestVictim(), keys, budget: 1000, stateDir: dir, backend: 'wasm' });
    try {
      const r = await queryAttack({ victim: victim.url, keysFile: join(dir, 'keys.txt'), attack: 'rays', images: 2, queriesPerImage: 6, seedSize: 10 }, { run: memoryRunStore() });
      const paid = r.detection?.paidByKey ?? [];
      expect(paid).toHaveLength(2);
      expect(Math.min(...paid)).toBeGreaterThan(0);
      expect(paid[0] + paid[1]).toBe(r.queries.attack);
    } finally {
      await victim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
