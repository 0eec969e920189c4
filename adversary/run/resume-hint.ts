import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { API_KEY_ENV } from '../../shared/cli-options.js';

/**
 * How to continue a stopped run, printed after a refusal, an error or Ctrl-C. A resumed run reads
 * its settings from the run folder's config.json, which never holds the API key, so the command
 * names the flag (or the variable) that must carry it again — never the key itself.
 */
export type ResumableCommand = 'run' | 'query-attack';

export function resumeCommand(command: ResumableCommand, out: string): string {
  return `npm run adversary -- ${command} --resume ${out} --api-key KEY`;
}

/** The resume command and what KEY stands for. */
export function resumeHint(command: ResumableCommand, out: string): string {
  return `${resumeCommand(command, out)} (KEY: your API key; or set ${API_KEY_ENV} and leave out --api-key)`;
}

/**
 * Ctrl-C during a paying run: say how to continue (on stderr) and exit 130, the shell's code for
 * SIGINT. Every answer paid for is already on disk (the answer cache is fsync'd before a label is
 * used), so stopping here loses only the work in progress. Returns a function that removes the handler.
 */
export function exitOnInterrupt(command: ResumableCommand, out: string): () => void {
  const onInt = () => {
    // No config.json yet: nothing was paid for, and there is no run folder to resume.
    const how = existsSync(join(out, 'config.json')) ? `continue with ${resumeHint(command, out)}` : 'nothing was paid for yet; start the command again';
    process.stderr.write(`\ninterrupted; ${how}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onInt);
  return () => process.off('SIGINT', onInt);
}
