import { describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { runSoak } from '../scripts/soak.js';
import { ensureTestVictim } from './fixtures.js';

/**
 * Keeps the soak script's code path alive: a few seconds of its load against a real victim process
 * it starts itself. It asserts the report is complete and the ledger exact, never how fast.
 */
describe('npm run soak (a few seconds)', () => {
  it('reports windows, counts malformed requests and retries apart, and finds the ledger exact', async () => {
    const model = await ensureTestVictim();
    const { backend } = await initBackend();
    const lines: string[] = [];
    const report = await runSoak({
      minutes: 0.1,
      windowSeconds: 2,
      warmupMinutes: 0,
      clients: 4,
      model,
      backend,
      mix: { malformed: 0.2, retry: 0.3 },
      log: (l) => lines.push(l),
    });
    expect(report.windows.length).toBe(3);
    expect(report.errors).toEqual({ count: 0, examples: [] });
    expect(report.answeredImages).toBeGreaterThan(0);
    expect(report.ledgerImages).toBe(report.answeredImages);
    expect(report.goals.ledgerExact).toBe(true);
    const sum = (k: 'expected4xx' | 'retries') => report.windows.reduce((s, w) => s + w[k], 0);
    expect(sum('expected4xx')).toBeGreaterThan(0);
    expect(sum('retries')).toBeGreaterThan(0);
    for (const w of report.windows) {
      expect(w.rssMiB).toBeGreaterThan(0);
      expect(w.p99Ms!).toBeGreaterThanOrEqual(w.p50Ms!);
    }
    expect(lines.some((l) => l.includes('ledger charged'))).toBe(true);
  });
});
