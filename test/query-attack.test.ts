import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import { resolveQueryAttackConfig, runQueryAttackCampaign, type ImageRecord, type QueryAttackResults } from '../adversary/query/run.js';
import { seen, stagedOracle } from './budget-staging.js';
import { initBackend } from '../shared/engine/backend.js';
import { ensureTestVictim } from './fixtures.js';
import { ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * RayS and HopSkipJump against a real victim process over HTTP: success grows with the budget,
 * every returned image is an adversarial example of the reported size, the queries the attack
 * counts are exactly what the victim charged, a budget too small for the plan is refused before
 * anything is paid, and a key's budget running out inside the searches stops the run (or, with
 * allowPartial, keeps the finished images labelled partial), resumably without paying twice.
 */
const KEYS = { ray: 'ray-0123456789abcdef', hop: 'hop-0123456789abcdef', poor: 'poor-0123456789abcdef', shared: 'shared-0123456789abcdef', rich: 'rich-0123456789abcdef', judge: 'judge-0123456789abcdef' };
const BUDGETS: Record<string, number> = { ray: 100_000, hop: 100_000, poor: 2_000, shared: 8_000, rich: 100_000, judge: 100_000 };
let dir: string;
let victim: KeyedVictim;
const read = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;

beforeAll(async () => {
  const modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-query-'));
  victim = await startKeyedVictim({ dir, model: modelDir, backend, keys: KEYS, budget: BUDGETS, rateLimit: 100_000 });
}, 300_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The victim's own labels of a run's adversarial examples, asked with a separate key. */
async function judge(run: string, records: ImageRecord[]): Promise<Int32Array> {
  const oracle = await createHttpOracle({ url: victim.url, apiKey: KEYS.judge });
  try {
    const bytes = readFileSync(join(run, 'adversarial.u8'));
    return await oracle.label(Float32Array.from(bytes, (b) => b / 255), records.length, 'measurement');
  } finally {
    await oracle.close();
  }
}

function checkExamples(records: ImageRecord[], labels: Int32Array, wants: (r: ImageRecord, l: number) => boolean): void {
  expect(records.length).toBeGreaterThan(0);
  records.forEach((r, i) => {
    if (r.linf === null) return;
    expect(wants(r, labels[i])).toBe(true);
    expect(labels[i]).toBe(r.label);
    expect(r.trace.at(-1)?.[1]).toBe(r.linf);
    expect(r.queries).toBeGreaterThan(0);
    expect(r.queries).toBeLessThanOrEqual(300);
  });
}

describe('decision-based attacks on the victim, over HTTP', () => {
  it('RayS: success rises with the budget, examples are real and as small as reported, queries = the victim\'s ledger', async () => {
    const run = join(dir, 'rays');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.ray, attack: 'rays', images: 24, queriesPerImage: 300 }, () => run);
    const r = read<QueryAttackResults>(join(run, 'results.json'));
    const records = read<ImageRecord[]>(join(run, 'images.json'));
    expect(r.stopped).toBeNull();
    expect(r.queries.attack).toBe(ledgerTotal(victim.files.ledger, 'ray'));
    expect(r.queries.attack).toBe(r.queries.cleanLabels + r.queries.probes);
    expect(r.queries.probes).toBeLessThanOrEqual(records.reduce((s, x) => s + x.queries, 0));
    const budgets = r.curve.map((p) => p.queriesPerImage);
    expect(budgets).toEqual([100, 200, 300]);
    for (const e of ['0.10', '0.20', '0.30']) {
      const s = r.curve.map((p) => p.success[e] as number);
      for (let k = 1; k < s.length; k++) expect(s[k]).toBeGreaterThanOrEqual(s[k - 1]);
    }
    // Smaller examples with more queries: the median distance shrinks.
    expect(r.curve.at(-1)!.medianLinf!).toBeLessThan(r.curve[0].medianLinf!);
    expect(r.curve.at(-1)!.success['0.30']).toBeGreaterThan(0.5);

    const labels = await judge(run, records);
    checkExamples(records, labels, (rec, l) => l !== rec.clean);
    // Recompute each example's distance from the pixels written, against the clean test image.
    const adv = readFileSync(join(run, 'adversarial.u8'));
    const { loadMnist } = await import('../shared/datasets/index.js');
    const test = loadMnist('test');
    records.forEach((rec, i) => {
      if (rec.linf === null) return;
      let linf = 0;
      for (let p = 0; p < 784; p++) linf = Math.max(linf, Math.abs(adv[i * 784 + p] / 255 - test.images[rec.testIndex * 784 + p]));
      expect(linf).toBeCloseTo(rec.linf!, 5);
    });
    const within = records.filter((rec) => rec.linf !== null && rec.linf <= 0.3 + 1e-6).length;
    expect(r.curve.at(-1)!.success['0.30']).toBeCloseTo(within / records.length, 9);
  }, 240_000);

  it('HopSkipJump L∞, targeted: every example is labelled as its target', async () => {
    const run = join(dir, 'hsja');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.hop, attack: 'hsja', norm: 'linf', targeted: true, images: 8, queriesPerImage: 300 }, () => run);
    const r = read<QueryAttackResults>(join(run, 'results.json'));
    const records = read<ImageRecord[]>(join(run, 'images.json'));
    expect(r.queries.attack).toBe(ledgerTotal(victim.files.ledger, 'hop'));
    expect(r.queries.startingPool).toBe(150);
    expect(records.filter((x) => x.linf !== null).length).toBeGreaterThan(4);
    const labels = await judge(run, records);
    checkExamples(records, labels, (rec, l) => l === rec.target && rec.target !== rec.clean);
  }, 240_000);

  it('a budget that cannot cover the plan is refused before any query; one cut inside the searches stops the run; a resume finishes it', async () => {
    // 24 clean labels + at most 24 × 300 probes = 7,224 > 2,000: refused, nothing paid.
    const poor = join(dir, 'poor');
    await expect(runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.poor, attack: 'rays', images: 24, queriesPerImage: 300 }, () => poor)).rejects.toMatchObject({ code: 'budget_insufficient' });
    expect(ledgerTotal(victim.files.ledger, 'poor')).toBe(0);

    // A shared key covers the plan at the start; the other user spends it down once the searches begin.
    const run = join(dir, 'cut');
    const lines: string[] = [];
    const config = resolveQueryAttackConfig({ victim: victim.url, apiKey: KEYS.shared, attack: 'rays', images: 24, queriesPerImage: 300 });
    const oracle = await stagedOracle(victim.url, KEYS.shared, run, { armed: seen(lines, 'rays ('), left: 500 });
    const cut = await runQueryAttackCampaign(config, run, oracle, (l) => lines.push(l)).then(() => null, (e: unknown) => e);
    await oracle.close();
    expect(cut).toMatchObject({ code: 'measurement_cut', message: expect.stringMatching(/rays query attack was cut short .* after \d+ of 24 images/) });
    for (const f of ['results.json', 'images.json', 'adversarial.u8']) expect(existsSync(join(run, f))).toBe(false);
    const sharedPaid = ledgerTotal(victim.files.ledger, 'shared');

    await runQueryAttackCommand({ resume: run, apiKey: KEYS.rich }, () => run);
    const done = read<QueryAttackResults>(join(run, 'results.json'));
    expect(done.stopped).toBeNull();
    expect(done.partial).toBeNull();
    // The same seeded searches over the same answers: the finished run equals an uninterrupted one.
    const fresh = read<QueryAttackResults>(join(dir, 'rays', 'results.json'));
    expect(done.curve).toEqual(fresh.curve);
    expect(done.queries.attack).toBe(fresh.queries.attack);
    // What the run folder paid over both keys: once per distinct probe, as the uncut run.
    expect(done.queries.attack).toBeLessThanOrEqual(sharedPaid + ledgerTotal(victim.files.ledger, 'rich'));
  }, 240_000);

  it('allowPartial: a run the budget cuts keeps only the images whose searches finished, labelled partial', async () => {
    const run = join(dir, 'partial');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.poor, attack: 'rays', images: 24, queriesPerImage: 300, allowPartial: true }, () => run);
    const partial = read<QueryAttackResults>(join(run, 'results.json'));
    expect(partial.stopped).toBe('budget_exhausted');
    expect(partial.partial).toEqual({ measure: 'query-attack', unit: 'images', measured: partial.images, planned: 24, reason: 'budget_exhausted' });
    expect(partial.images).toBeLessThan(24);
    expect(partial.queryPlan.attack).toEqual({ planned: 24 + 24 * 300, atMost: true, paid: ledgerTotal(victim.files.ledger, 'poor') });
    await runQueryAttackCommand({ resume: run, apiKey: KEYS.rich }, () => run);
    const done = read<QueryAttackResults>(join(run, 'results.json'));
    expect(done.partial).toBeNull();
    expect(done.curve).toEqual(read<QueryAttackResults>(join(dir, 'rays', 'results.json')).curve);
  }, 240_000);

  it('refuses bad settings before any query is paid', async () => {
    await expect(runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.judge, attack: 'rays', norm: 'l2' }, () => join(dir, 'bad'))).rejects.toThrow(/RayS is an L∞ attack/);
    await expect(runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.judge, attack: 'rays', queriesPerImage: 0 }, () => join(dir, 'bad2'))).rejects.toThrow(/queriesPerImage/);
  });
});
