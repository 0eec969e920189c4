/**
 * The campaign settings as documented are the settings the code takes: the full YAML block of
 * docs/campaign.md (section Settings) resolves to exactly the schema's defaults, its table names every
 * setting with the flag and default the command line generates from the schema, and the README's
 * minimal campaign file is a valid campaign.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { campaignSchema, resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { runOptions } from '../adversary/cli/settings.js';
import { flagName } from '../shared/schema-flags.js';

const ROOT = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** The first ```yaml block of a markdown file, parsed. */
function firstYamlBlock(markdown: string): CampaignInput {
  const block = /^```yaml\n([\s\S]*?)^```$/m.exec(markdown);
  if (!block) throw new Error('no ```yaml block');
  return parseYaml(block[1]) as CampaignInput;
}

describe('documented campaign settings', () => {
  const campaignDoc = read('docs/campaign.md');

  it("docs/campaign.md's YAML block holds the defaults, every one of them true", () => {
    expect(resolveConfig(firstYamlBlock(campaignDoc))).toEqual(resolveConfig({}));
  });

  it("docs/campaign.md's table of settings names every setting of the schema", () => {
    const table = campaignDoc.slice(campaignDoc.indexOf('### Each setting'));
    const missing = Object.keys(campaignSchema.shape).filter((key) => !table.includes(`| \`${key === 'boundary' ? 'boundary.*' : key}\` |`));
    expect(missing).toEqual([]);
  });

  it("the table's flag and default columns are what `run` generates from the schema", () => {
    const table = campaignDoc.slice(campaignDoc.indexOf('### Each setting'));
    const rows = new Map(
      [...table.matchAll(/^\| `([\w.*]+)` \| ([^|]*) \| ([^|]*) \|/gm)].map((m) => [m[1], { flag: m[2].trim(), default: m[3].trim() }]),
    );
    const wrong: string[] = [];
    for (const key of Object.keys(campaignSchema.shape)) {
      const row = rows.get(key === 'boundary' ? 'boundary.*' : key);
      const flag = key === 'boundary' ? 'no-boundary' : flagName(key);
      if (!row) continue; // the test above names it
      if (!row.flag.includes(`\`--${flag}\``)) wrong.push(`${key}: flag column ${row.flag}, expected --${flag}`);
      // A setting with a default in the schema shows exactly that default; one without says in words what happens.
      const generated = key === 'boundary' ? undefined : runOptions[flag]?.defaultDescription;
      if (generated !== undefined && row.default.replaceAll('`', '') !== generated) wrong.push(`${key}: default column ${row.default}, generated ${generated}`);
    }
    expect(wrong).toEqual([]);
  });

  it("the README's minimal campaign file is a valid campaign", () => {
    const c = resolveConfig(firstYamlBlock(read('README.md')));
    expect(c.attack).toBe('pgd');
    expect(c.epsilons).toEqual([0.1, 0.2, 0.3]);
  });
});
