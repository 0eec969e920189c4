import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { helpText, main, SUB_COMMANDS } from '../lib/cli.js';
import { setCommandName } from '../shared/cli.js';

/**
 * The `transferlab` command: every sub-command the issue names is listed and dispatches to a command line's
 * main, an unknown one gets one line naming the known ones, and a dispatched command's help names itself as
 * the installed command. The package's own fields point at what the build writes (.ci/package installs
 * the real tarball).
 */
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string } | string>;
  files: string[];
  private?: boolean;
  dependencies: Record<string, string>;
};

afterEach(() => {
  vi.restoreAllMocks();
  setCommandName(undefined);
});

/** Output of a main with process.exit turned into an exception. */
async function output(argv: string[]): Promise<{ text: string; error?: unknown }> {
  const lines: string[] = [];
  vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
    throw new Error(`exit ${code}`);
  }) as never);
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation(() => {});
  try {
    await main(argv);
    return { text: lines.join('\n') };
  } catch (error) {
    return { text: lines.join('\n'), error };
  } finally {
    vi.restoreAllMocks();
  }
}

describe('transferlab', () => {
  const named = ['victim', 'train', 'evaluate', 'attack', 'whitebox', 'query-attack', 'compare', 'sweep', 'worker', 'demo', 'bench'];

  it('lists every sub-command in --help, each dispatching to a command line', async () => {
    const help = (await output(['--help'])).text;
    expect(help).toBe(helpText());
    for (const name of named) {
      expect(help).toMatch(new RegExp(`^  transferlab ${name} +\\S`, 'm'));
      const { main: run } = await SUB_COMMANDS[name].load();
      expect(typeof run, name).toBe('function');
    }
  });

  it('refuses an unknown command in one line naming the known ones', async () => {
    const { error } = await output(['atack']);
    expect(String(error)).toMatch(/unknown command "atack"; choose one of: victim, train, .*attack/);
    expect(String(error)).not.toMatch(/\brun\b/); // the hidden alias stays hidden
  });

  it("shows a dispatched command's help under the installed name", async () => {
    expect((await output(['train', '--help'])).text).toMatch(/^transferlab train \[options\]/);
    expect((await output(['attack', '--help'])).text).toMatch(/^transferlab run\b/);
  });

  it('is what the package builds, installs and exports', () => {
    expect(pkg.private).toBeUndefined();
    expect(pkg.bin.transferlab).toBe('dist/lib/cli.js');
    expect(readFileSync(new URL('../lib/cli.ts', import.meta.url), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(pkg.exports['.']).toEqual({ types: './dist/lib/index.d.ts', default: './dist/lib/index.js' });
    expect(pkg.exports['./package.json']).toBe('./package.json');
    expect(pkg.files).toEqual(['dist']);
    // Nothing built runs through tsx: it is for the sources only.
    expect(pkg.dependencies.tsx).toBeUndefined();
  });
});
