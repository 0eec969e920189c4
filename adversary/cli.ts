import yargs from 'yargs';
import { failOnOneLine, isMain, runMain, commandName } from '../shared/cli.js';
import { sweepCommands } from './queue/cli.js';
import { queryAttackCommand } from './query/cli.js';
import { compareCommand } from './cli/compare.js';
import { runCommand } from './cli/run.js';
import { whiteboxCommand } from './cli/whitebox.js';
import { targetCommand } from './cli/target.js';

/**
 * The adversary's command line: one module per command under cli/ (query-attack in query/, sweep and
 * worker in queue/). A campaign's flags are generated from its settings schema (cli/settings.ts).
 */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const done = (c: number) => (code = c);
  await sweepCommands(
    yargs(argv)
      .scriptName(commandName('npm run adversary --'))
      .usage("$0 <command> [options]\n\nThe adversary: knows only the victim's label API.")
      .command(runCommand(done))
      .command(whiteboxCommand(done))
      .command(queryAttackCommand(done))
      .command(compareCommand)
      .command(targetCommand(done)),
  )
    .demandCommand(1, 'name a command: run, whitebox, query-attack, compare, target, sweep or worker')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  return code;
}

if (isMain(import.meta.url)) runMain(main);
