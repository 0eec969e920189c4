import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileRunStore } from '../adversary/run/store.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { ONE_HOT_ROWS } from '../adversary/targets/tensors.js';
import { loadDataset } from '../shared/datasets/index.js';
import { initBackend } from '../shared/engine/backend.js';
import { ensureTestVictim } from './fixtures.js';
import { ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * The oip and tfserving targets read a [N, classes] output whose metadata cannot say whether its rows
 * are probabilities: against the project's victim serving labels only (one-hot rows, `--output label`),
 * a run that needs scores stops at the answers that show it — paid, counted as the victim charged them,
 * their labels kept — while rows of real probabilities (rounded to 2 decimals) go on as scores.
 */
const KEY = 'one-hot-0123456789abcdef';
let dir: string;
let labelOnly: KeyedVictim;
let rounded: KeyedVictim;
const x = () => loadDataset('mnist').test.images.subarray(0, 2 * ONE_HOT_ROWS * 784);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'transferlab-one-hot-'));
  const model = await ensureTestVictim();
  const { backend } = await initBackend();
  const serve = (name: string, output: string[]) =>
    startKeyedVictim({
      dir, model, backend, name, keys: [{ id: 'k', key: KEY, budget: 100_000 }], rateLimit: 100_000,
      args: ['--protocol', 'transferlab,oip,tfserving', '--model-name', 'model', ...output],
    });
  [labelOnly, rounded] = await Promise.all([serve('label', []), serve('rounded', ['--output', 'scores', '--round', '2'])]);
}, 300_000);

afterAll(async () => {
  await Promise.all([labelOnly?.stop(), rounded?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('one-hot rows of a label-only server', () => {
  for (const kind of ['oip', 'tfserving'] as const) {
    it(`${kind}: a scores run stops at the answers that show labels only, paid and counted; real probabilities go on`, async () => {
      const out = join(dir, `${kind}-label`);
      const open = (url: string, threat: 'label' | 'scores', folder = out) =>
        createTargetOracle({ url, apiKey: KEY, threat, target: { target: kind, maxBatch: 50 }, store: fileRunStore(folder) });
      const charged = () => ledgerTotal(labelOnly.files.ledger, 'k');
      const before = charged();
      const scoring = await open(labelOnly.url, 'scores');
      await expect(scoring.scores!(x(), 2 * ONE_HOT_ROWS, 'attack')).rejects.toMatchObject({
        code: 'threat_unavailable',
        message: expect.stringMatching(new RegExp(`${kind} target .*one-hot \\(its first ${ONE_HOT_ROWS} answered rows all were\\).*paid, counted`)),
      });
      // Every image the victim charged is counted: the rows before the verdict and the answer that gave it.
      expect(scoring.counts().attack).toBe(charged() - before);
      expect(scoring.counts().attack).toBeGreaterThanOrEqual(ONE_HOT_ROWS);
      const paid = scoring.counts().attack;
      await scoring.close();
      // A label run on the same folder finds those labels in the cache.
      const labels = await open(labelOnly.url, 'label');
      await labels.label(x(), paid, 'attack');
      expect(labels.counts()).toMatchObject({ attack: 0, cached: paid });
      await labels.close();
      // Probabilities rounded to 2 decimals, many rows of them one-hot: scores all the same.
      const real = await open(rounded.url, 'scores', join(dir, `${kind}-rounded`));
      const scores = await real.scores!(x(), 2 * ONE_HOT_ROWS, 'attack');
      expect(scores.some((v) => v > 0 && v < 1)).toBe(true);
      await real.close();
    }, 120_000);
  }
});
