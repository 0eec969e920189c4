import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeLoader } from '../shared/entry.js';
import { TransferlabError } from '../shared/errors.js';

/**
 * `npm run demo` timed the way a new user meets it: in an empty folder, so the first run trains the
 * default victim (models/victim there) before it attacks it, and a second run in the same folder finds
 * it trained. Each run is its own process tree (demo, victim), timed by wall clock and, where GNU time
 * is installed, by the CPU seconds of the whole tree: on a shared machine the CPU seconds say how much
 * work it was, the wall time how long someone waited.
 */
export interface DemoRun {
  case: 'fresh' | 'trained';
  wallSeconds: number;
  /** User + system CPU seconds of the demo and its victim (null without /usr/bin/time). */
  cpuSeconds: number | null;
  /** The demo's own figures: its total, and the part after the victim was ready (training excluded). */
  demoSeconds: number | null;
  afterVictimReadySeconds: number | null;
  /** The victim's training, when this run did it. */
  trainingSeconds: number | null;
  testAccuracy: number | null;
}

/** The figures a demo's output (and GNU time's `cpu U S` line) states. */
export function readDemoOutput(output: string): Omit<DemoRun, 'case' | 'wallSeconds'> {
  const cpu = /^cpu ([\d.]+) ([\d.]+)$/m.exec(output);
  const done = /demo finished in (\d+) s \((\d+) s after the victim was ready\)/.exec(output);
  const trained = /test accuracy ([\d.]+) in ([\d.]+) s; saved to/.exec(output);
  return {
    cpuSeconds: cpu ? Number((Number(cpu[1]) + Number(cpu[2])).toFixed(1)) : null,
    demoSeconds: done ? Number(done[1]) : null,
    afterVictimReadySeconds: done ? Number(done[2]) : null,
    trainingSeconds: trained ? Number(trained[2]) : null,
    testAccuracy: trained ? Number(trained[1]) : null,
  };
}

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const GNU_TIME = '/usr/bin/time';

async function timedDemo(dir: string, which: DemoRun['case'], extra: string[], log: (l: string) => void): Promise<DemoRun> {
  // As `npm run demo` starts it: node with tsx's loader (no tsx CLI process in between), named by its
  // file as every child of the project names it, since the demo runs in a folder of its own.
  const command = [process.execPath, ...nodeLoader(import.meta.url), join(ROOT, 'scripts', 'demo.ts'), ...extra];
  const timed = existsSync(GNU_TIME);
  const argv = timed ? [GNU_TIME, '-f', 'cpu %U %S', ...command] : command;
  const t0 = performance.now();
  const output = await new Promise<string>((ok, fail) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? ok(text) : fail(new TransferlabError('bench_failed', `demo (${which}) exited with ${code}:\n${text.slice(-2000)}`))));
  });
  const run: DemoRun = { case: which, wallSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)), ...readDemoOutput(output) };
  log(
    `demo, ${which === 'fresh' ? 'fresh (victim trained first)' : 'victim already trained'}: ${run.wallSeconds} s` +
      (run.cpuSeconds !== null ? `, ${run.cpuSeconds} CPU s` : '') +
      (run.trainingSeconds !== null ? `; training ${run.trainingSeconds} s, test accuracy ${run.testAccuracy}` : '') +
      (run.afterVictimReadySeconds !== null ? `; ${run.afterVictimReadySeconds} s after the victim was ready` : ''),
  );
  return run;
}

/** Both cases, in a temporary folder removed afterwards. `extra` goes to both demos (tests pass a tiny model's options). */
export async function benchDemo(o: { log: (l: string) => void; extra?: string[] }): Promise<DemoRun[]> {
  const dir = mkdtempSync(join(tmpdir(), 'transferlab-demo-'));
  try {
    const fresh = await timedDemo(dir, 'fresh', o.extra ?? [], o.log);
    const trained = await timedDemo(dir, 'trained', o.extra ?? [], o.log);
    return [fresh, trained];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
