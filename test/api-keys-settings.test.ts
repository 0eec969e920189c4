import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../adversary/campaign/config.js';
import { buildConfig } from '../adversary/cli/settings.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import { resolveQueryAttackConfig } from '../adversary/query/config.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { withEnvKey } from '../shared/cli-options.js';

/**
 * One API key or a keys file of Sybil keys, never both: the campaign's and the query attack's settings
 * (from flags, a file, or a resumed run's config.json) and the oracles refuse the pair with an error
 * naming both settings, before anything is sent; the environment's key fills in only where no key at
 * all is given, so it never turns a Sybil run into a refused one.
 */
const BOTH = /apiKey \(--api-key\) and keysFile \(--keys-file\) are both given/;
/** Nothing listens here: a check that connected first would fail on the connection, not on the keys. */
const NOWHERE = 'http://127.0.0.1:9';
let dir: string;
let keys: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'transferlab-keys-'));
  keys = join(dir, 'keys.txt');
  writeFileSync(keys, 'sybil-a-0123456789\nsybil-b-0123456789\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('apiKey and keysFile together', () => {
  it('the campaign and the query attack refuse both, naming the two settings and their flags', () => {
    expect(() => resolveConfig({ apiKey: 'one-key', keysFile: keys })).toThrow(BOTH);
    expect(() => resolveQueryAttackConfig({ apiKey: 'one-key', keysFile: keys })).toThrow(BOTH);
    // From the command line: --keys-file in a config file and --api-key as a flag.
    const file = join(dir, 'campaign.json');
    writeFileSync(file, JSON.stringify({ keysFile: keys }));
    expect(() => buildConfig({ config: file, 'api-key': 'one-key' })).toThrow(BOTH);
  });

  it('a resumed Sybil query attack given --api-key is refused before any query', async () => {
    const out = join(dir, 'sybil-run');
    mkdirSync(out);
    writeFileSync(join(out, 'config.json'), JSON.stringify({ kind: 'query-attack', victim: NOWHERE, keysFile: keys }));
    await expect(runQueryAttackCommand({ resume: out, apiKey: 'one-key' }, () => out)).rejects.toThrow(BOTH);
  });

  it('the oracles refuse one key and Sybil keys together before connecting', async () => {
    await expect(createHttpOracle({ url: NOWHERE, apiKey: 'one-key', apiKeys: ['a', 'b'] })).rejects.toThrow(/apiKey and apiKeys are both given/);
    await expect(createTargetOracle({ url: NOWHERE, apiKey: 'one-key', apiKeys: ['a', 'b'] })).rejects.toThrow(/apiKey and apiKeys are both given/);
  });

  it("the environment's key fills in only where no key is given: never beside a keys file", () => {
    const env = { TRANSFERLAB_API_KEY: 'from-env' };
    expect(buildConfig({}, {}, env).apiKey).toBe('from-env');
    expect(buildConfig({ 'api-key': 'flag' }, {}, env).apiKey).toBe('flag');
    const sybil = buildConfig({ 'keys-file': keys }, {}, env);
    expect([sybil.keysFile, sybil.apiKey]).toEqual([keys, undefined]);
    expect(withEnvKey({ keysFile: keys }, env)).toEqual({ keysFile: keys });
    expect(withEnvKey({}, {})).toEqual({});
  });
});
