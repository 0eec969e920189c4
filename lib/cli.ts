#!/usr/bin/env node
import { createRequire } from 'node:module';
import { isMain, runMain, setCommandName } from '../shared/cli.js';
import { TransferlabError } from '../shared/errors.js';

/**
 * `transferlab <command>`: the installed package's one command. Each sub-command is one of the project's
 * command lines, loaded only when named (so `--help` starts no compute backend), and gets the rest of the
 * arguments unchanged; in a clone the npm scripts run the same modules (`npm run victim` = `transferlab victim`).
 */
type Main = (argv: string[]) => Promise<number | void>;

interface SubCommand {
  describe: string;
  /** The command line's main, with the arguments that come before the user's (the adversary's own sub-command). */
  load: () => Promise<{ main: Main; prefix?: string[] }>;
  /** Left out of --help: an alias. */
  hidden?: boolean;
}

const adversary = (command: string) => async () => ({ main: (await import('../adversary/cli.js')).main, prefix: [command] });

/** Sub-commands in the order --help lists them. A new command line is one more row. */
export const SUB_COMMANDS: Readonly<Record<string, SubCommand>> = {
  victim: { describe: 'serve a model over the label-only HTTP API (keys, budgets, audit log, detectors)', load: async () => ({ main: (await import('../victim/cli.js')).main }) },
  train: { describe: 'train a victim model (plain or adversarially trained) and save it', load: async () => ({ main: (await import('../victim/train/cli.js')).main }) },
  evaluate: { describe: 'compare victim models: clean and white-box accuracy, gradient-masking check, transfer', load: async () => ({ main: (await import('../scripts/lab/evaluate-cli.js')).main }) },
  attack: { describe: "black-box campaign: a substitute from the victim's labels, transfer attacks, boundary, report", load: adversary('run') },
  whitebox: { describe: 'white-box baseline: attack the victim model itself (reads its files)', load: adversary('whitebox') },
  'query-attack': { describe: 'decision-based query attack (RayS, HopSkipJump) against the victim', load: adversary('query-attack') },
  compare: { describe: 'compare run folders side by side (compare.csv, compare.html)', load: adversary('compare') },
  sweep: { describe: 'queue many campaigns on Redis (BullMQ); `sweep status` shows them', load: adversary('sweep') },
  worker: { describe: 'run queued campaigns', load: adversary('worker') },
  demo: { describe: 'train or load a victim, serve it, run the white-box baseline and a campaign (--quick: a small one)', load: async () => ({ main: (await import('../scripts/demo.js')).main }) },
  bench: { describe: 'benchmarks: model throughput, the victim over HTTP, the campaign by phase', load: async () => ({ main: (await import('../scripts/bench.js')).main }) },
  // The adversary's own name for `attack`: its help and examples say `run`.
  run: { describe: 'the same as attack', load: adversary('run'), hidden: true },
};

function version(): string {
  return (createRequire(import.meta.url)('transferlab/package.json') as { version: string }).version;
}

export function helpText(): string {
  const shown = Object.entries(SUB_COMMANDS).filter(([, c]) => !c.hidden);
  const width = Math.max(...shown.map(([name]) => name.length));
  return [
    'transferlab <command> [options]',
    '',
    'Simulate black-box transfer attacks on a label-only ML service: the victim and the adversary as separate processes.',
    '',
    'Commands:',
    ...shown.map(([name, c]) => `  transferlab ${name.padEnd(width)}  ${c.describe}`),
    '',
    'Options:',
    '  --help, -h     this text; `transferlab <command> --help` for a command\'s options',
    '  --version, -v  the package version',
    '',
    'Start with: transferlab demo --quick',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(helpText());
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(version());
    return 0;
  }
  const sub = Object.hasOwn(SUB_COMMANDS, name) ? SUB_COMMANDS[name] : undefined;
  if (!sub) {
    const known = Object.entries(SUB_COMMANDS).filter(([, c]) => !c.hidden).map(([n]) => n);
    throw new TransferlabError('invalid_arguments', `unknown command "${name}"; choose one of: ${known.join(', ')} (see transferlab --help)`);
  }
  const { main: run, prefix = [] } = await sub.load();
  // The adversary's commands are sub-commands of its own parser: its help then reads `transferlab <command>`.
  setCommandName(prefix.length ? 'transferlab' : `transferlab ${name}`);
  return (await run([...prefix, ...rest])) ?? 0;
}

if (isMain(import.meta.url)) runMain(main);
