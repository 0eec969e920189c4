import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { compareRuns, CSV_COLUMNS } from '../adversary/report/compare.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import { putResults, readResults } from '../adversary/campaign/results.js';
import { SESSIONS_FILE, startRunClock } from '../adversary/run/clock.js';
import { fileRunStore, memoryRunStore } from '../adversary/run/store.js';
import { runWhitebox } from '../adversary/campaign/whitebox.js';
import { initBackend } from '../shared/engine/backend.js';
import { evaluationResultsSchema, runResultsSchema, type QueryAttackRunResults, type RunResults } from '../shared/protocol/index.js';
import { main as evaluateMain } from '../scripts/lab/evaluate-cli.js';
import { ensureTestVictim } from './fixtures.js';
import { readJsonl, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * results.json as a contract: every writer's file fits the schema (checked here with the schema
 * itself, not the writer's types), compare reads every run kind through it — a real query attack
 * against a real victim process included — and refuses a bad file or a missing folder by name
 * without leaving a half-written output folder; a resumed run's duration is the whole run's.
 */
const KEYS = { writer: 'writer-0123456789abcdef', poor: 'poor-0123456789abcdef', rich: 'rich-0123456789abcdef' };
const BUDGETS: Record<string, number> = { writer: 100_000, poor: 600, rich: 100_000 };
let dir: string;
let victim: KeyedVictim;
let modelDir: string;
const runs = { campaign: '', whitebox: '', query: '' };
const json = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

beforeAll(async () => {
  modelDir = await ensureTestVictim();
  const { backend } = await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-results-'));
  victim = await startKeyedVictim({ dir, model: modelDir, backend, keys: KEYS, budget: BUDGETS, rateLimit: 100_000 });
}, 300_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The schema itself, strictly: a file without schemaVersion (what the writers wrote before) fails here. */
function fitsContract(path: string, kind: RunResults['kind']): RunResults {
  const parsed = runResultsSchema.safeParse(json(path));
  if (!parsed.success) throw new Error(`${path}: ${parsed.error.message}`);
  expect(parsed.data.kind).toBe(kind);
  expect(parsed.data.schemaVersion).toBe(1);
  return parsed.data;
}

describe('results.json: one contract for every run kind', () => {
  it('each writer writes a results.json the schema accepts: campaign, white-box baseline, query attack', async () => {
    runs.campaign = join(dir, 'campaign');
    const config = resolveConfig({
      victim: victim.url, apiKey: KEYS.writer, seed: 5, seedSize: 20, rounds: 2, epochs: 1, substitute: 'papernot-mlp', evalSize: 30, epsilons: [0.1, 0.3],
      boundary: { images: 8, maps: 1, grid: 3, rays: { images: 4, queries: 30 } },
    });
    const oracle = await createHttpOracle({ url: victim.url, apiKey: KEYS.writer, cacheDir: runs.campaign });
    await runCampaign(config, runs.campaign, oracle, { log: () => {} });
    await oracle.close();
    const campaign = fitsContract(join(runs.campaign, 'results.json'), 'campaign');
    expect(campaign.kind === 'campaign' && campaign.boundary?.nearest).toBeTruthy();
    // results.json is the file people share: the settings are recorded, the API key is not.
    expect(readFileSync(join(runs.campaign, 'results.json'), 'utf8')).not.toContain(KEYS.writer);

    runs.whitebox = join(dir, 'whitebox');
    await runWhitebox(resolveConfig({ seed: 5, seedSize: 20, evalSize: 30, attack: 'fgsm', epsilons: [0.1, 0.3] }), modelDir, runs.whitebox);
    fitsContract(join(runs.whitebox, 'results.json'), 'whitebox');

    runs.query = join(dir, 'query');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.writer, attack: 'rays', images: 8, queriesPerImage: 120 }, () => runs.query);
    fitsContract(join(runs.query, 'results.json'), 'query-attack');
  }, 300_000);

  it('compare on a query-attack run folder, alone and beside the other kinds: its figures, no crash', async () => {
    const q = json(join(runs.query, 'results.json')) as QueryAttackRunResults;
    const at03 = q.epsilons.find((e) => Math.abs(e.epsilon - 0.3) < 1e-9)!;
    const alone = await compareRuns([runs.query], join(dir, 'cmp-query'));
    expect(alone.rows[0]).toMatchObject({ kind: 'query-attack', epsilon: 0.3, querySuccessRate: at03.success, medianQueriesPerImage: q.medianQueriesPerImage, attackQueries: q.queries.attack });
    expect(alone.rows[0].misclassificationRate).toBe(q.curve.at(-1)!.misclassification['0.30']);

    const mixed = await compareRuns([runs.campaign, runs.whitebox, runs.query], join(dir, 'cmp-mixed'));
    expect(mixed.rows.map((r) => r.kind)).toEqual(['campaign', 'whitebox', 'query-attack']);
    const csv = readFileSync(mixed.csvPath, 'utf8').trim().split('\n').map((l) => l.split(','));
    const col = (name: (typeof CSV_COLUMNS)[number]) => csv[0].indexOf(name);
    expect(csv[3][col('kind')]).toBe('query-attack');
    expect(Number(csv[3][col('querySuccessRate')])).toBeCloseTo(at03.success!, 6);
    expect(Number(csv[3][col('medianQueriesPerImage')])).toBe(q.medianQueriesPerImage);
    // A figure a kind does not measure is left empty, never made up.
    expect(csv[3][col('transferRate')]).toBe('');
    expect(csv[1][col('querySuccessRate')]).toBe('');
    const html = readFileSync(mixed.htmlPath, 'utf8');
    expect(html).toContain('Query attacks: success against queries per image');
    expect(html).toContain('Transfer attack success against ε');
    expect(html).toContain('Substitute training');
  }, 120_000);

  it('a defence evaluation writes an evaluation.json the schema accepts, and compare gives a row per model', async () => {
    const out = join(dir, 'evaluation');
    expect(await evaluateMain(['--models', modelDir, '--images', '20', '--epsilons', '0.1', '0.3', '--pgd-steps', '3', '--restarts', '1', '--apgd-steps', '10', '--apgd-targets', '2', '--square-queries', '100', '--rays-queries', '50', '--out', out])).toBe(0);
    const parsed = evaluationResultsSchema.safeParse(json(join(out, 'evaluation.json')));
    if (!parsed.success) throw new Error(parsed.error.message);
    const worst = parsed.data.models[0].whitebox.find((p) => p.attack === 'worst' && p.epsilon === 0.3)!;
    const cmp = await compareRuns([out, runs.query], join(dir, 'cmp-eval'));
    expect(cmp.rows.map((r) => r.kind)).toEqual(['evaluation', 'query-attack']);
    expect(cmp.rows[0]).toMatchObject({ run: 'evaluation/lenet-v2', epsilon: 0.3, whiteboxAccuracy: worst.accuracy, victimCleanAccuracy: parsed.data.models[0].cleanAccuracy, transferRate: null });
  }, 120_000);

  it('an adversarially trained model (the guard\'s fractional epochs, rates and step sizes in its metadata) gets its evaluation.json', async () => {
    // Robust training reads its guard several times an epoch; the evaluation copies those readings.
    const guarded = join(dir, 'guarded-model');
    cpSync(modelDir, guarded, { recursive: true });
    const metaFile = join(guarded, 'metadata.json');
    const meta = json(metaFile) as Record<string, unknown>;
    const readings = [
      { epoch: 0.33, robustAccuracy: 0.5, cleanAccuracy: 0.9, learningRate: 0.003, stepSize: 0.375 },
      { epoch: 1, robustAccuracy: 0.6, cleanAccuracy: 0.92, learningRate: 0.001, stepSize: 0.3, event: 'collapse' },
    ];
    writeFileSync(metaFile, JSON.stringify({ ...meta, guard: { readings } }));
    const out = join(dir, 'evaluation-guarded');
    expect(await evaluateMain(['--models', guarded, '--images', '10', '--epsilons', '0.3', '--pgd-steps', '2', '--restarts', '1', '--attacks', 'fgsm', 'pgd', '--out', out])).toBe(0);
    const parsed = evaluationResultsSchema.safeParse(json(join(out, 'evaluation.json')));
    if (!parsed.success) throw new Error(parsed.error.message);
    expect(parsed.data.models[0].guardReadings).toEqual(readings);
    expect(existsSync(join(out, 'evaluation.rejected.json'))).toBe(false);
  }, 120_000);

  it('a bad results.json is refused by file and field, and no output folder is left', async () => {
    const bad = join(dir, 'bad-run');
    cpSync(runs.whitebox, bad, { recursive: true });
    const file = join(bad, 'results.json');
    const good = json(file) as Record<string, unknown>;
    const out = join(dir, 'cmp-bad');
    writeFileSync(file, JSON.stringify({ ...good, queries: { attack: 'many', measurement: 0, cached: 0 } }));
    await expect(compareRuns([runs.query, bad], out)).rejects.toThrow(new RegExp(`${file}[^]*queries\\.attack`));
    expect(existsSync(out)).toBe(false);
    // Drift is caught: a field the contract does not know is refused by name.
    writeFileSync(file, JSON.stringify({ ...good, surprise: 1 }));
    await expect(compareRuns([bad], out)).rejects.toThrow(/surprise/);
    writeFileSync(file, '{"kind": "campaign", ');
    await expect(compareRuns([bad], out)).rejects.toThrow(/bad-run\/results\.json is not JSON/);
    writeFileSync(file, JSON.stringify({ ...good, kind: undefined }));
    await expect(compareRuns([bad], out)).rejects.toThrow(/has no "kind"/);
    expect(existsSync(out)).toBe(false);
    // A file from before the schema (no schemaVersion) that otherwise fits is read as version 1.
    const { schemaVersion: _v, ...legacy } = good;
    writeFileSync(file, JSON.stringify(legacy));
    expect(readResults(fileRunStore(bad)).schemaVersion).toBe(1);
  });

  it('a path that does not exist is named as such, and nothing is written', async () => {
    const out = join(dir, 'cmp-missing');
    await expect(compareRuns([runs.query, join(dir, 'no-such-run')], out)).rejects.toThrow(/no-such-run does not exist/);
    expect(existsSync(out)).toBe(false);
  });

  it('a writer whose results do not fit the contract writes nothing', () => {
    const store = memoryRunStore('drift');
    const q = json(join(runs.query, 'results.json')) as QueryAttackRunResults;
    // NaN is what JSON would silently turn into null.
    expect(() => putResults(store, { ...q, victimCleanAccuracy: Number.NaN })).toThrow(/victimCleanAccuracy/);
    expect(store.exists('results.json')).toBe(false);
  });

  it('a resumed run\'s duration is the whole run\'s: the sum over its sessions', async () => {
    const run = join(dir, 'resumed');
    // allowPartial: the poor key cannot cover the plan; the run starts anyway and keeps what the budget allows.
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.poor, attack: 'rays', images: 8, queriesPerImage: 200, allowPartial: true }, () => run);
    const partial = json(join(run, 'results.json')) as QueryAttackRunResults;
    expect(partial.stopped).toBe('budget_exhausted');
    const t = performance.now();
    await runQueryAttackCommand({ resume: run, apiKey: KEYS.rich }, () => run);
    const secondWall = (performance.now() - t) / 1000;
    const done = json(join(run, 'results.json')) as QueryAttackRunResults;
    expect(done.stopped).toBeNull();
    const sessions = new Map<string, number>();
    for (const r of readJsonl<{ session: string; seconds: number }>(join(run, SESSIONS_FILE))) sessions.set(r.session, r.seconds);
    const [first, second] = [...sessions.values()];
    expect(sessions.size).toBe(2);
    expect(first).toBeCloseTo(partial.durationSeconds, 1);
    expect(done.durationSeconds).toBeCloseTo(first + second, 1);
    expect(second).toBeLessThanOrEqual(secondWall);
    expect(done.durationSeconds).toBeGreaterThan(partial.durationSeconds + 0.5 * secondWall);
  }, 240_000);

  it('the run clock adds up sessions and their phases', async () => {
    const store = memoryRunStore('clock');
    const first = startRunClock(store);
    await new Promise((r) => setTimeout(r, 60));
    first.tick({ training: 0.04 });
    first.close();
    const recorded = (JSON.parse(new TextDecoder().decode(store.read(SESSIONS_FILE)!).trim()) as { seconds: number }).seconds;
    expect(recorded).toBeGreaterThanOrEqual(0.05);
    await new Promise((r) => setTimeout(r, 5)); // a later session
    const second = startRunClock(store);
    expect(second.totalSeconds()).toBeGreaterThanOrEqual(recorded);
    expect(second.totalSeconds()).toBeLessThan(recorded + 1);
    expect(second.totalPhases({ training: 1, crafting: 2 })).toEqual({ training: 1.04, crafting: 2 });
    second.close();
  });

  it('a campaign resumed in its run folder reports the duration and phases of both sessions', async () => {
    const run = join(dir, 'campaign-resumed');
    cpSync(runs.campaign, run, { recursive: true });
    const before = json(join(run, 'results.json')) as RunResults & { phases: Record<string, number> };
    const config = resolveConfig(json(join(run, 'config.json')) as Record<string, unknown>);
    const oracle = await createHttpOracle({ url: victim.url, apiKey: KEYS.writer, cacheDir: run });
    const t = performance.now();
    const after = await runCampaign(config, run, oracle, { log: () => {} });
    const secondWall = (performance.now() - t) / 1000;
    await oracle.close();
    // The first session's own time (recorded after its results, so a little above their duration) plus this one's.
    expect(after.durationSeconds).toBeGreaterThan(before.durationSeconds + 0.5 * secondWall);
    expect(after.durationSeconds).toBeLessThanOrEqual(before.durationSeconds + secondWall + 2);
    expect(after.phases.training).toBeGreaterThanOrEqual(before.phases.training);
  }, 120_000);
});
