import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { epochsForRound, lambdaForRound, mergeConfig, readConfigFile, resolveConfig } from '../adversary/campaign/config.js';
import { main } from '../adversary/cli.js';
import { campaignFromFlags } from '../adversary/cli/settings.js';
import { TransferlabError } from '../shared/errors.js';

describe('campaign settings', () => {
  it('fills the Papernot defaults', () => {
    const c = resolveConfig({});
    expect(c).toMatchObject({ seedSize: 150, rounds: 6, lambda: 0.1, tau: 3, substitute: 'paper-cnn', labelSmoothing: 0.1, attack: 'fgsm', evalSize: 1000 });
    expect(c.epsilons).toEqual([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]);
  });

  it('lists every problem at once', () => {
    let error: unknown;
    try {
      resolveConfig({ seedSize: -1, rounds: 0, substitute: 'resnet', attack: 'cw' as never, epsilons: [2], bogus: 1 } as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TransferlabError);
    const message = (error as Error).message;
    for (const field of ['seedSize', 'rounds', 'substitute', 'attack', 'epsilons']) expect(message).toContain(field);
    expect(message).toMatch(/bogus/);
  });

  it('rejects a seed set and evaluation set that do not fit in the test images', () => {
    expect(() => resolveConfig({ seedSize: 5000, evalSize: 6000 })).toThrow(/10000/);
  });

  it('reads YAML and lets flags override the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-config-'));
    const path = join(dir, 'c.yaml');
    writeFileSync(path, 'rounds: 4\nattack: mi-fgsm\nepsilons: [0.1, 0.3]\n');
    const merged = mergeConfig(readConfigFile(path), campaignFromFlags({ rounds: 2, 'target-class': '7' }));
    const c = resolveConfig(merged);
    expect(c).toMatchObject({ rounds: 2, attack: 'mi-fgsm', targetClass: 7, epsilons: [0.1, 0.3] });
    writeFileSync(path, '- just\n- a list\n');
    expect(() => readConfigFile(path)).toThrow(/mapping/);
    expect(() => readConfigFile(join(dir, 'missing.yaml'))).toThrow(/not found/);
    expect(resolveConfig(campaignFromFlags({ boundary: false })).boundary.enabled).toBe(false);
  });

  it('accepts every configuration the repository ships', () => {
    const dir = join(import.meta.dirname, '..', 'scripts', 'configs');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(() => resolveConfig(readConfigFile(join(dir, f))), f).not.toThrow();
  });

  it('takes snapshots only of earlier rounds, each once, within the ensemble size', () => {
    expect(resolveConfig({ rounds: 6, snapshots: [5, 4] }).snapshots).toEqual([5, 4]);
    expect(() => resolveConfig({ rounds: 6, snapshots: [6] })).toThrow(/snapshots.*earlier rounds/);
    expect(() => resolveConfig({ snapshots: [3, 3] })).toThrow(/snapshots.*repeat/);
    expect(() => resolveConfig({ substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn'], snapshots: [4, 5] })).toThrow(/snapshots.*≤ 5/);
    expect(() => resolveConfig({ snapshots: [0] })).toThrow(/snapshots/);
    expect(() => resolveConfig({ craftThreads: 3 as 2 })).toThrow(/craftThreads/);
  });

  it('takes one epoch count or one per round, the last repeating', () => {
    expect(epochsForRound({ epochs: 7 }, 4)).toBe(7);
    expect([0, 1, 2, 3].map((r) => epochsForRound({ epochs: [5, 3] }, r))).toEqual([5, 3, 3, 3]);
    expect(resolveConfig(campaignFromFlags({ epochs: ['4'] })).epochs).toBe(4);
    expect(resolveConfig(campaignFromFlags({ epochs: ['6', '2'], shift: 0 }))).toMatchObject({ epochs: [6, 2], shift: 0 });
    expect(() => resolveConfig({ epochs: [3, 0] })).toThrow(/epochs/);
    expect(() => resolveConfig({ shift: 9 })).toThrow(/shift/);
  });

  it('flips λ every τ rounds', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((r) => lambdaForRound({ lambda: 0.1, tau: 3 }, r))).toEqual([0.1, 0.1, 0.1, -0.1, -0.1, -0.1, 0.1]);
  });

  it('refuses bad flags before contacting any victim', async () => {
    // Port 9 (discard) is never a victim: reaching the network would fail differently and slowly.
    await expect(main(['run', '--victim', 'http://127.0.0.1:9', '--rounds', '0', '--substitute', 'nope'])).rejects.toThrow(/rounds[\s\S]*substitute/);
    await expect(main(['run', '--victim', 'http://127.0.0.1:9', '--rounds', '4', '--snapshots', '4'])).rejects.toThrow(/snapshots/);
    await expect(main(['frobnicate'])).rejects.toThrow(TransferlabError);
  });
});
