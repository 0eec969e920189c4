import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { campaignSchema, mergeConfig, readConfigFile, resolveConfig } from '../adversary/campaign/config.js';
import { campaignFromFlags } from '../adversary/cli/settings.js';
import { queryAttackSchema, resolveQueryAttackConfig } from '../adversary/query/run.js';
import { KeyRing } from '../victim/store/keys.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import type { TransferlabError } from '../shared/errors.js';
import { editDistance, nearestName, objectSchemas } from '../shared/settings-errors.js';

/** A valid campaign config with every nested object written out, so a key can go in at any depth. */
const valid = () => ({ rounds: 2, attack: 'pgd', boundary: { images: 10, maps: 1, rays: { images: 5, queries: 50 } } });
/** The objects of a campaign config a user can write keys into, by path. */
const depths: string[][] = [[], ['boundary'], ['boundary', 'rays']];

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('settings from user files', () => {
  it('every object of every settings schema refuses unknown keys', () => {
    for (const schema of [campaignSchema, queryAttackSchema]) {
      const objects = objectSchemas(schema);
      expect(objects.length).toBeGreaterThan(0);
      for (const o of objects) expect(o.strict, o.path).toBe(true);
    }
    expect(objectSchemas(campaignSchema).map((o) => o.path)).toEqual(['(root)', 'boundary', 'boundary.rays']);
  });

  it('a random unknown key at any depth of a valid campaign config is refused with its path', () => {
    expect(() => resolveConfig(valid() as never)).not.toThrow();
    const known = new Set(objectSchemas(campaignSchema).flatMap((o) => o.keys));
    const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/).filter((k) => !known.has(k));
    fc.assert(
      fc.property(fc.constantFrom(...depths), key, fc.jsonValue(), (path, k, value) => {
        const config: Record<string, unknown> = valid();
        let at = config;
        for (const p of path) at = at[p] as Record<string, unknown>;
        at[k] = value;
        const message = messageOf(() => resolveConfig(config as never));
        expect(message).toContain(`${[...path, k].join('.')}: unknown setting`);
      }),
      { seed: 20261206, numRuns: 200 },
    );
  });

  it('names the nearest known setting, from a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-settings-'));
    const path = join(dir, 'c.yaml');
    writeFileSync(path, 'rounds: 2\nboundary:\n  imagez: 4\n  rays: { querys: 10 }\nsubstitue: paper-cnn\n');
    const message = messageOf(() => resolveConfig(readConfigFile(path)));
    expect(message).toContain('boundary.imagez: unknown setting; did you mean images?');
    expect(message).toContain('boundary.rays.querys: unknown setting; did you mean queries?');
    expect(message).toContain('substitue: unknown setting; did you mean substitute?');
    // A flag that sets one nested key keeps the file's others, typos included.
    expect(messageOf(() => resolveConfig(mergeConfig(readConfigFile(path), campaignFromFlags({ boundary: false }))))).toContain('boundary.imagez: unknown setting');
    // Nothing near: the known names of that level are listed instead.
    expect(messageOf(() => resolveConfig({ boundary: { zzzzzzzz: 1 } } as never))).toContain('boundary.zzzzzzzz: unknown setting; known settings here: enabled, images, maps, grid, extent, rays');
    expect(messageOf(() => resolveQueryAttackConfig({ queriesPerImag: 5 } as never))).toContain('queriesPerImag: unknown setting; did you mean queriesPerImage?');
  });

  it('keys files get the same hints', () => {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-keys-'));
    const path = join(dir, 'keys.json');
    writeFileSync(path, JSON.stringify({ keys: [{ id: 'alice', key: 'a'.repeat(40), budjet: 10 }] }));
    expect(messageOf(() => KeyRing.fromFile(path))).toContain('keys.0.budjet: unknown setting; did you mean budget?');
  });

  it('a victim URL without http:// is refused naming the flag, the value and the URL it likely meant', async () => {
    expect(messageOf(() => resolveConfig({ victim: '127.0.0.1:8080' }))).toContain("victim: --victim '127.0.0.1:8080' is not a URL; give e.g. http://127.0.0.1:8080");
    expect(messageOf(() => resolveQueryAttackConfig({ victim: 'localhost:8080' }))).toContain("--victim 'localhost:8080' must be an http:// or https:// URL; give http://localhost:8080");
    expect(messageOf(() => resolveConfig({ victim: 'ftp://x' }))).toContain("--victim 'ftp://x' must be an http:// or https:// URL");
    const refused = await createHttpOracle({ url: '10.0.0.5:8080' }).then(() => undefined, (e: TransferlabError) => e);
    expect(refused?.code).toBe('bad_victim_url');
    expect(refused?.message).toContain('give e.g. http://10.0.0.5:8080');
  });

  it('measures edit distance and keeps far names out of the hint', () => {
    expect(editDistance('imagez', 'images')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(nearestName('Seedsize', ['seedSize', 'seed'])).toBe('seedSize');
    expect(nearestName('colour', ['enabled', 'images'])).toBeUndefined();
  });
});
