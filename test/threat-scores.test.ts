import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaignCommand } from '../adversary/commands.js';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { ImageRecord, QueryAttackResults } from '../adversary/query/run.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { initBackend } from '../shared/engine/backend.js';
import { ensureTestVictim } from './fixtures.js';
import { ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * What each answer gives the adversary, against real victim processes over loopback: a campaign or a
 * Square Attack asking for scores from a label-only victim is refused before anything is paid (the
 * victim's ledger shows 0); against a victim serving scores, the campaign distils its substitute from
 * them at the same cost in queries as from labels, and Square Attack fools it with examples the victim
 * itself labels wrongly, paying exactly what its ledger says, and a resumed run pays nothing twice.
 */
const KEYS = { refused: 'refused-0123456789abcdef', labels: 'labels-0123456789abcdef', scores: 'scores-0123456789abcdef', square: 'square-0123456789abcdef', judge: 'judge-0123456789abcdef', top1: 'top1-0123456789abcdef' };
let dir: string;
let labelOnly: KeyedVictim;
let scoring: KeyedVictim;
let top1: KeyedVictim;
const read = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;
const SMALL: CampaignInput = { seed: 2, seedSize: 30, rounds: 2, epochs: 8, substitute: 'papernot-mlp', evalSize: 40, epsilons: [0.3], targeted: false, boundary: { enabled: false } };

let model: string;
let backend: string;
function serve(name: string, output: string[]): Promise<KeyedVictim> {
  return startKeyedVictim({ dir, model, backend, name, keys: KEYS, budget: 100_000, rateLimit: 100_000, args: output });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'transferlab-threat-'));
  model = await ensureTestVictim(); // once: the victims share it
  ({ backend } = await initBackend()); // once, before the victims start side by side
  [labelOnly, scoring, top1] = await Promise.all([serve('label', []), serve('scores', ['--output', 'scores']), serve('top1', ['--output', 'topk:1'])]);
}, 300_000);

afterAll(async () => {
  await Promise.all([labelOnly?.stop(), scoring?.stop(), top1?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('threat models over HTTP', () => {
  it('threat scores, or Square Attack, against a label-only victim: refused before any query, nothing charged', async () => {
    const config = resolveConfig({ ...SMALL, victim: labelOnly.url, apiKey: KEYS.refused, threat: 'scores' });
    await expect(runCampaignCommand(config, join(dir, 'refused-campaign'), false)).rejects.toThrow(/threat model is "scores" but the victim answers "label"/);
    await expect(runQueryAttackCommand({ victim: labelOnly.url, apiKey: KEYS.refused, attack: 'square', images: 4 }, () => join(dir, 'refused-square'))).rejects.toThrow(/"topk" but the victim answers "label"/);
    expect(ledgerTotal(labelOnly.files.ledger, 'refused')).toBe(0);
  });

  it('a campaign distilled from scores pays the same queries as one from labels, and records its threat', async () => {
    const runs: Record<string, CampaignResults> = {};
    for (const threat of ['label', 'scores'] as const) {
      const out = join(dir, `campaign-${threat}`);
      const key = threat === 'label' ? KEYS.labels : KEYS.scores;
      await runCampaignCommand(resolveConfig({ ...SMALL, victim: scoring.url, apiKey: key, threat }), out, false);
      runs[threat] = read<CampaignResults>(join(out, 'results.json'));
      expect(runs[threat].threat).toBe(threat);
      expect(runs[threat].queries.attack + runs[threat].queries.measurement).toBe(ledgerTotal(scoring.files.ledger, threat === 'label' ? 'labels' : 'scores'));
      // Only a scores campaign keeps the probabilities: in its answer cache and in its checkpoints.
      const answers = readFileSync(join(out, 'answers.jsonl'), 'utf8');
      expect(answers.includes('"s":[')).toBe(threat === 'scores');
      expect(existsSync(join(out, 'checkpoints', 'round-02', 'scores.f32'))).toBe(threat === 'scores');
    }
    expect(runs.scores.queries.attack).toBe(runs.label.queries.attack);
    expect(runs.scores.queries.attack).toBe(SMALL.seedSize! * 2);
    expect(runs.scores.rounds.at(-1)?.agreement).toBeGreaterThan(0.3);
  }, 120_000);

  it('Square Attack from scores: real adversarial examples within ε, queries = the ledger, a resumed run pays nothing again', async () => {
    const out = join(dir, 'square');
    const flags = { victim: scoring.url, apiKey: KEYS.square, attack: 'square' as const, images: 12, queriesPerImage: 200, epsilon: 0.3 };
    await runQueryAttackCommand(flags, () => out);
    const r = read<QueryAttackResults>(join(out, 'results.json'));
    const records = read<ImageRecord[]>(join(out, 'images.json'));
    expect(r.queries.attack).toBe(ledgerTotal(scoring.files.ledger, 'square'));
    expect(r.queries.attack).toBe(r.queries.cleanLabels + r.queries.probes);
    // Every probe Square asked is paid once: a repeat (a candidate asked before) and the final label of each
    // image's best probe are answered by the cache.
    const asked = records.reduce((s, x) => s + x.queries, 0);
    expect(r.queries.probes + r.queries.cached).toBe(asked + records.length);
    const found = records.filter((x) => x.linf !== null);
    expect(found.length).toBeGreaterThanOrEqual(10);
    for (const x of found) {
      expect(x.linf).toBeLessThanOrEqual(76 / 255 + 1e-6);
      expect(x.label).not.toBe(x.clean);
    }
    // The victim itself labels each example as recorded (asked with another key).
    const judge = await createTargetOracle({ url: scoring.url, apiKey: KEYS.judge });
    try {
      const bytes = readFileSync(join(out, 'adversarial.u8'));
      const labels = await judge.label(Float32Array.from(bytes, (b) => b / 255), records.length, 'measurement');
      records.forEach((x, i) => x.linf !== null && expect(labels[i]).toBe(x.label));
    } finally {
      await judge.close();
    }
    // Resume over the same folder: every probe is answered from the cache; the victim charges nothing more.
    const paid = ledgerTotal(scoring.files.ledger, 'square');
    rmSync(join(out, 'results.json'));
    await runQueryAttackCommand({ resume: out, apiKey: KEYS.square }, () => out);
    expect(ledgerTotal(scoring.files.ledger, 'square')).toBe(paid);
    expect(read<ImageRecord[]>(join(out, 'images.json'))).toEqual(records);
  }, 120_000);

  it('Square Attack from top-1 answers (every other class unknown) still fools the victim', async () => {
    const out = join(dir, 'square-top1');
    await runQueryAttackCommand({ victim: top1.url, apiKey: KEYS.top1, attack: 'square', images: 8, queriesPerImage: 200 }, () => out);
    const r = read<QueryAttackResults>(join(out, 'results.json'));
    expect(r.queries.attack).toBe(ledgerTotal(top1.files.ledger, 'top1'));
    expect(r.epsilons.find((e) => e.epsilon === 0.3)?.success).toBeGreaterThanOrEqual(0.75);
  }, 120_000);
});
