import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../scripts/experiment-outputs.js';
import { goals, outputsTable, type OutputRow } from '../scripts/outputs-table.js';
import { ensureTestVictim } from './fixtures.js';

/**
 * npm run experiment:outputs at toy size against the test victim, served label-only and with scores:
 * each row measured from its own run folders, the table and chart written, and a second run keeps
 * every finished run folder (nothing asked again). The goals are read off the rows, met or not.
 */
const dir = mkdtempSync(join(tmpdir(), 'transferlab-outputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const row = (policy: string, agreement: number, transfer: [number, number], success: number, median: number): OutputRow => ({
  policy,
  threat: policy === 'label' ? 'label' : 'scores',
  campaigns: [
    { budget: 4800, attackQueries: 4800, agreement, transfer: transfer[0], misclassification: transfer[0], seconds: 1 },
    { budget: 1200, attackQueries: 1200, agreement: agreement - 0.05, transfer: transfer[1], misclassification: transfer[1], seconds: 1 },
  ],
  query: { attack: policy === 'label' ? 'rays' : 'square', images: 200, queriesPerImage: 1000, success, medianQueries: median, attackQueries: 1, seconds: 1 },
});

describe('experiment:outputs', () => {
  it('the goals are read off the rows: met and not met', () => {
    const met = goals([row('label', 0.9, [0.6, 0.5], 0.99, 54), row('scores', 0.93, [0.7, 0.62], 1, 21)], 4800, 1200);
    expect(met.match(/\*\*met\*\*/g)?.length).toBe(3);
    const missed = goals([row('label', 0.9, [0.6, 0.5], 0.99, 54), row('scores', 0.91, [0.7, 0.55], 0.98, 60)], 4800, 1200);
    expect(missed.match(/\*\*not met\*\*/g)?.length).toBe(3);
    expect(outputsTable([row('scores', 0.93, [0.7, 0.62], 1, 21)], [4800, 1200])).toContain('| `scores` | scores | 93.0 % | 70.0 % | 88.0 % | 62.0 % | Square (200 images, ≤ 1,000 each) | 100.0 % | 21 |');
  });

  it('a tiny run over label and scores writes the table, the chart and a row per policy; run again, it asks nothing', async () => {
    const model = await ensureTestVictim();
    const out = join(dir, 'tiny');
    const args = ['--size', 'tiny', '--model', model, '--policies', 'label', 'scores', '--out', out];
    expect(await main(args)).toBe(0);
    const json = JSON.parse(readFileSync(join(out, 'outputs.json'), 'utf8')) as { rows: OutputRow[] };
    expect(json.rows.map((r) => [r.policy, r.threat, r.query?.attack])).toEqual([['label', 'label', 'rays'], ['scores', 'scores', 'square']]);
    for (const r of json.rows) expect(r.campaigns.map((c) => c.attackQueries)).toEqual([40, 20]);
    expect(readFileSync(join(out, 'outputs.md'), 'utf8')).toMatch(/Square Attack from scores at ε 0\.3/);
    expect(readFileSync(join(out, 'outputs.svg'), 'utf8')).toMatch(/^<svg/);
    const answers = () => readFileSync(join(out, 'scores', 'query-square', 'answers.jsonl'), 'utf8');
    const before = answers();
    expect(await main(args)).toBe(0);
    expect(answers()).toBe(before);
    expect(existsSync(join(out, 'label', 'campaign-40', 'results.json'))).toBe(true);
  }, 240_000);
});
