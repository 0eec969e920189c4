import { existsSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main as adversary } from '../adversary/cli.js';
import { main as victim } from '../victim/cli.js';
import { main as victimTrain } from '../victim/train/cli.js';
import { main as evaluate } from '../scripts/lab/evaluate-cli.js';
import { main as demo } from '../scripts/demo.js';
import { main as bench } from '../scripts/bench.js';
import { main as experimentTransfer } from '../scripts/experiment-transfer.js';
import { runExperiment } from '../scripts/experiment-lib.js';
import { ROOT } from './fixtures.js';

/**
 * Every command line: an unknown flag gets one line naming it, and every example its --help shows
 * parses (yargs' strict checks, with a middleware that stops before the command's handler) and names
 * only files the repository has.
 */
type Main = (argv: string[]) => Promise<unknown>;
const experiment: Main = (argv) => runExperiment('budget', argv, () => []);
const CLIS: { name: string; main: Main; commands: string[] }[] = [
  { name: 'adversary', main: adversary, commands: ['run', 'whitebox', 'query-attack', 'compare', 'sweep', 'worker'] },
  { name: 'victim', main: victim, commands: [''] },
  { name: 'victim train', main: victimTrain, commands: [''] },
  { name: 'evaluate', main: evaluate, commands: [''] },
  { name: 'demo', main: demo, commands: [''] },
  { name: 'bench', main: bench, commands: [''] },
  { name: 'experiment transfer', main: experimentTransfer, commands: [''] },
  { name: 'experiment budget', main: experiment, commands: [''] },
];

class ParsedOk extends Error {}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const proto = Object.getPrototypeOf(yargs([])) as Record<string, (...a: any[]) => any>;

afterEach(() => vi.restoreAllMocks());

/** Run a main with process.exit turned into an exception and its output swallowed; the error it ends with. */
async function outcome(main: Main, argv: string[]): Promise<unknown> {
  vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
    throw new Error(`exit ${code}`);
  }) as never);
  vi.spyOn(console, 'log').mockImplementation(() => {});
  vi.spyOn(console, 'error').mockImplementation(() => {});
  try {
    await main(argv);
    return undefined;
  } catch (e) {
    return e;
  } finally {
    vi.restoreAllMocks();
  }
}

/** The examples a command's builder registers, as written ($0 first). */
async function examplesOf(main: Main, command: string): Promise<string[]> {
  const seen: string[] = [];
  const example = proto.example;
  vi.spyOn(proto, 'example').mockImplementation(function (this: unknown, cmd: string, ...rest: unknown[]) {
    seen.push(cmd);
    return example.call(this, cmd, ...rest);
  });
  await outcome(main, [...(command ? [command] : []), '--help']);
  return seen;
}

/** Parse argv with every check yargs makes, then stop before any handler runs. */
function dryParse(main: Main, argv: string[]): Promise<unknown> {
  const parseAsync = proto.parseAsync;
  vi.spyOn(proto, 'parseAsync').mockImplementation(function (this: { middleware: (f: () => void) => void }, ...rest: unknown[]) {
    this.middleware(() => {
      throw new ParsedOk();
    });
    return parseAsync.apply(this, rest);
  });
  return outcome(main, argv);
}

describe('command lines', () => {
  it('every example in every --help parses and names files the repository has', async () => {
    let count = 0;
    for (const cli of CLIS) {
      for (const command of cli.commands) {
        const examples = await examplesOf(cli.main, command);
        if (cli.name !== 'experiment budget' && cli.name !== 'experiment transfer') expect(examples.length, `${cli.name} ${command}`).toBeGreaterThan(0);
        for (const example of examples) {
          const argv = example.replace(/^\$0\s*/, '').split(/\s+/).filter(Boolean);
          const result = await dryParse(cli.main, argv);
          expect(result, `${cli.name}: ${example}: ${String(result)}`).toBeInstanceOf(ParsedOk);
          for (const [i, arg] of argv.entries()) {
            const named = ['--config', '--campaign-config'].includes(argv[i - 1] ?? '') || /^(scripts|experiments|docs)\//.test(arg);
            if (named) expect(existsSync(join(ROOT, arg)), `${cli.name}: ${example}: ${arg}`).toBe(true);
          }
          count++;
        }
      }
    }
    expect(count).toBeGreaterThan(20);
  }, 60_000);

  it('a wrong flag is refused on one line naming it, for every command', async () => {
    expect(await dryParse(adversary, ['run', '--victim', 'http://127.0.0.1:8080'])).toBeInstanceOf(ParsedOk);
    for (const cli of CLIS) {
      for (const command of cli.commands) {
        const positional = command === 'compare' ? ['runs/a'] : cli.name === 'evaluate' ? ['--models', 'models/victim'] : [];
        const e = await outcome(cli.main, [...(command ? [command] : []), ...positional, '--colour', 'red']);
        expect((e as Error).message, `${cli.name} ${command}`).toBe('unknown flag --colour; see --help');
      }
    }
    expect(((await outcome(victim, ['--port=8080', '--modle=x', '-z'])) as Error).message).toBe('unknown flags --modle, -z; see --help');
  });
});
