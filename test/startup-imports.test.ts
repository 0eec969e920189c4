import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './fixtures.js';

/**
 * Start-up cost: the commands most people run (a campaign, a victim on files) must not load BullMQ or
 * ioredis, which only the queue commands and `--store` use (together ~0.5–1 s of every start on the
 * project's 2-core machines). Each entry point is imported in a fresh Node with a module-load hook
 * that writes down every ES module it loads.
 */
const dir = mkdtempSync(join(tmpdir(), 'transferlab-imports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'hooks.mjs'), "import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(process.env.LOADED_FILE, url + '\\n'); return next(url, context); }\n");
writeFileSync(join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister(new URL('./hooks.mjs', import.meta.url));\n");

function modulesLoadedBy(entry: string): string[] {
  const out = join(dir, `${entry.replace(/\W/g, '_')}.txt`);
  writeFileSync(out, '');
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, '--import', 'tsx', '-e', `await import(${JSON.stringify(pathToFileURL(join(ROOT, entry)).href)})`], {
    cwd: ROOT,
    env: { ...process.env, LOADED_FILE: out },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(out, 'utf8').split('\n').filter(Boolean);
}

const packages = (urls: string[]) => new Set(urls.flatMap((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? []));

describe('start-up imports', () => {
  it('the adversary command loads neither BullMQ nor ioredis (the queue commands load them when run)', () => {
    const loaded = packages(modulesLoadedBy('adversary/cli.ts'));
    expect(loaded.has('yargs')).toBe(true); // the hook saw the command's own imports
    expect(loaded.has('bullmq')).toBe(false);
    expect(loaded.has('ioredis')).toBe(false);
  }, 90_000);

  it('the victim command loads no ioredis unless --store asks for Redis', () => {
    const loaded = packages(modulesLoadedBy('victim/cli.ts'));
    expect(loaded.has('express')).toBe(true);
    expect(loaded.has('ioredis')).toBe(false);
    expect(loaded.has('bullmq')).toBe(false);
  }, 90_000);
});
