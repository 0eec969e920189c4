import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private redis-server for a test file or a load script: Debian's binary, a free loopback port, a temporary
 * working folder, never the system service. `durable` turns on AOF with fsync on every write,
 * the setting the victim's shared store needs.
 */
export const REDIS_SERVER = '/usr/bin/redis-server';
export const haveRedis = existsSync(REDIS_SERVER);

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

export async function startRedis(opts: { durable?: boolean } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'transferlab-redis-'));
  // A port found free can be taken before redis binds it: try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--loglevel', 'notice'];
    args.push(...(opts.durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const ready = await new Promise<boolean>((done) => {
      const timer = setTimeout(() => done(false), 10_000);
      const onData = (c: Buffer) => {
        out += c.toString();
        if (/Ready to accept connections/i.test(out)) {
          clearTimeout(timer);
          done(true);
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', () => {
        clearTimeout(timer);
        done(false);
      });
    });
    if (ready) {
      const stop = () =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            rmSync(dir, { recursive: true, force: true });
            return done();
          }
          child.once('exit', () => {
            rmSync(dir, { recursive: true, force: true });
            done();
          });
          child.kill('SIGTERM');
        });
      return { url: `redis://127.0.0.1:${port}/0`, port, dir, child, stop };
    }
    child.kill('SIGKILL');
    if (attempt >= 4) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start:\n${out.slice(-2000)}`);
    }
  }
}
