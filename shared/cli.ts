import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isTransferlabError, TransferlabError } from './errors.js';

/**
 * The outer edge of every command: run main with the process's argv, turn a TransferlabError
 * into a one-line message and a non-zero exit code, and keep stack traces for real defects.
 */
export function runMain(main: (argv: string[]) => Promise<number | void>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code ?? 0;
    },
    (e: unknown) => {
      if (isTransferlabError(e)) {
        console.error(`error (${e.code}): ${e.message}`);
      } else {
        console.error(e);
      }
      process.exitCode = 1;
    },
  );
}

let dispatchedAs: string | undefined;

/**
 * The name a command line's help and examples show: `transferlab victim` when the `transferlab` command
 * (lib/cli.ts) dispatched to it, else the npm script it runs under in a clone (`npm run victim --`).
 */
export function commandName(npmScript: string): string {
  return dispatchedAs ?? npmScript;
}

/** Called by the `transferlab` dispatcher before it hands argv to a command's main (undefined: back to the npm names). */
export function setCommandName(name: string | undefined): void {
  dispatchedAs = name;
}

/** True when the module at `metaUrl` is the script node/tsx was started with. */
export function isMain(metaUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(fileURLToPath(metaUrl)) === realpathSync(script);
  } catch {
    return false;
  }
}

/**
 * yargs' `.fail` for every command line: one line naming what was wrong (an unknown flag as the user
 * typed it) and pointing at --help, instead of the whole help text. `argv` is what was parsed.
 */
export function failOnOneLine(argv: readonly string[]) {
  return (msg: string | null, err: Error | undefined): never => {
    if (err) throw err;
    const unknown = /^Unknown arguments?: (.+)$/.exec(msg ?? '');
    if (!unknown) throw new TransferlabError('invalid_arguments', `${msg ?? 'invalid arguments'}; see --help`);
    const typed = unknown[1].split(', ').map((name) => argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`) || a === `-${name}`)?.split('=')[0] ?? name);
    throw new TransferlabError('invalid_arguments', `unknown ${typed.every((t) => t.startsWith('-')) ? 'flag' : 'argument'}${typed.length > 1 ? 's' : ''} ${typed.join(', ')}; see --help`);
  };
}
