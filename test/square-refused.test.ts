import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { ImageRecord, QueryAttackResults } from '../adversary/query/run.js';
import { initBackend } from '../shared/engine/backend.js';
import { ensureTestVictim } from './fixtures.js';
import { ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * Square Attack against a victim that serves scores and refuses attack queries (Blacklight, action
 * reject), one probe per request: every probe the victim refused is counted as RayS and HopSkipJump
 * count theirs — in its image's queries and flagged count (with the query count at the first), in the
 * run's detection figures — and a refused probe is never taken for a fooled image nor sent again.
 */
const KEY = 'square-refused-0123456789abcdef';
let dir: string;
let victim: KeyedVictim;
const read = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'transferlab-square-refused-'));
  const model = await ensureTestVictim();
  const { backend } = await initBackend();
  victim = await startKeyedVictim({
    dir, model, backend, keys: [{ id: 'square', key: KEY, budget: 100_000 }], rateLimit: 100_000,
    args: ['--output', 'scores', '--detector', 'blacklight', '--detector-action', 'reject'],
  });
}, 300_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Square Attack against a detector that refuses its probes', () => {
  it('counts every refused probe per image and in the run, and pays for nothing it does not count', async () => {
    const out = join(dir, 'run');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEY, attack: 'square', images: 4, queriesPerImage: 40, requestSize: 1 }, () => out);
    const r = read<QueryAttackResults>(join(out, 'results.json'));
    const records = read<ImageRecord[]>(join(out, 'images.json'));
    const flagged = records.reduce((s, x) => s + (x.flagged ?? 0), 0);
    // The detector refused probes (the premise), and each is counted against its image and in the run.
    expect(r.detection?.refusedImages).toBeGreaterThan(0);
    expect(flagged).toBe(r.detection?.refusedImages);
    expect(r.detection?.flagged).toBe(flagged);
    for (const x of records) {
      expect(x.flagged).toBeLessThanOrEqual(x.queries);
      if (x.flagged) expect(x.firstFlagged).toBeGreaterThanOrEqual(1);
      if (x.flagged) expect(x.firstFlagged).toBeLessThanOrEqual(x.queries);
      else expect(x.firstFlagged).toBeNull();
      // A search ends 'finished' only on an answer that fooled the victim, never on a refusal.
      if (x.end === 'finished') expect(x.label).not.toBeNull();
    }
    // Every probe the victim answered was paid once and is in an image's count; nothing was sent for the
    // final labels (each image's best probe was answered, so the answer cache has it).
    const answered = records.reduce((s, x) => s + x.queries - (x.flagged ?? 0), 0);
    expect(r.queries.probes).toBeLessThanOrEqual(answered);
    expect(r.queries.attack).toBe(ledgerTotal(victim.files.ledger, 'square'));
  }, 120_000);
});
