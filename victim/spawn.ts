import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeLoader, ownModulePath } from '../shared/entry.js';
import { TransferlabError } from '../shared/errors.js';

/**
 * Start the victim service as its own process (demo, benchmarks, integration tests) and wait for
 * the line that names its URL. The adversary then talks to it over loopback HTTP only.
 */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/**
 * `node --import tsx` rather than the tsx binary: one process, so a signal (or SIGKILL in a
 * crash test) reaches the service itself and not a wrapper that would leave it orphaned.
 * From the built package (dist/, no tsx) it is plain `node`.
 */
export const NODE_TS = [process.execPath, ...nodeLoader(import.meta.url)] as const;

export interface VictimProcess {
  url: string;
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export interface SpawnOptions {
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** The victim's working folder, against which its relative paths resolve (default: this process's). */
  cwd?: string;
  /** Where the victim's own output goes: inherit shows its progress bars (first-run training). */
  stdio?: 'inherit' | 'pipe';
  timeoutMs?: number;
  onLine?: (line: string) => void;
}

export function spawnVictim(opts: SpawnOptions): Promise<VictimProcess> {
  const child = spawn(NODE_TS[0], [...NODE_TS.slice(1), ownModulePath('./cli.js', import.meta.url), ...opts.args], {
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', opts.stdio === 'inherit' ? 'inherit' : 'pipe'],
  });
  const stop = (graceMs = 10_000) =>
    new Promise<number | null>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', (code) => {
        clearTimeout(timer);
        done(code);
      });
      child.kill('SIGTERM');
    });
  return new Promise((ok, fail) => {
    let buffered = '';
    let tail = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new TransferlabError('victim_start_timeout', `the victim did not start within ${opts.timeoutMs} ms:\n${tail}`, 500));
    }, opts.timeoutMs ?? 30 * 60_000);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        tail = (tail + line + '\n').slice(-4000);
        opts.onLine?.(line);
        const m = /listening on (http:\/\/\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          ok({ url: m[1], child, stop });
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => (tail = (tail + c.toString()).slice(-4000)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new TransferlabError('victim_exited', `the victim exited (code ${code}) before it was ready:\n${tail}`, 500));
    });
  });
}
