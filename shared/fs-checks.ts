import { accessSync, constants, mkdirSync, existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { TransferlabError } from './errors.js';

/**
 * Fail before hours of work, not after: check that `dir` (or the folder that will hold it)
 * can be written.
 */
export function assertWritableDir(dir: string, what: string): void {
  const target = resolve(dir);
  let probe = existsSync(target) ? target : dirname(target);
  try {
    while (!existsSync(probe)) probe = dirname(probe);
    if (!statSync(probe).isDirectory()) throw new Error(`${probe} is not a folder`);
    accessSync(probe, constants.W_OK);
    mkdirSync(dirname(target), { recursive: true });
  } catch (e) {
    throw new TransferlabError('unwritable_output', `cannot write ${what} to ${dir}: ${(e as Error).message}`);
  }
}
