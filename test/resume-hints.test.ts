import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_TS, ROOT, type VictimProcess } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';
import { startKeyedVictim } from './victim-client.js';

/**
 * The printed way to continue a stopped run must work when typed as printed: it names --api-key
 * (config.json never keeps the key) and never prints the key itself; Ctrl-C says it too, and exits 130.
 */
const KEYS = [
  { id: 'small', key: 'k-small-budget-0123456789', budget: 60 },
  { id: 'ctrl-c', key: 'k-interrupted-0123456789', budget: 100_000 },
];
let victim: VictimProcess;
let dir: string;

beforeAll(async () => {
  const model = await ensureTestVictim();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-resume-'));
  victim = await startKeyedVictim({ dir, model, keys: KEYS, rateLimit: 100_000, timeoutMs: 120_000 });
}, 180_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function adversary(args: string[], key: string) {
  const child = spawn(NODE_TS[0], [...NODE_TS.slice(1), 'adversary/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, TRANSFERLAB_API_KEY: key, TRANSFERLAB_QUIET: '1', TFJS_BACKEND: 'cpu' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stdout.resume();
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, exit, stderr: () => stderr };
}

/** SIGINT once the run has paid for some answers (its ledger is not empty). */
async function interruptOncePaid(run: ReturnType<typeof adversary>, out: string): Promise<number | null> {
  const ledger = join(out, 'queries.jsonl');
  const timer = setInterval(() => {
    if (existsSync(ledger) && statSync(ledger).size > 0) {
      clearInterval(timer);
      run.child.kill('SIGINT');
    }
  }, 20);
  const code = await run.exit;
  clearInterval(timer);
  return code;
}

const campaign = ['--seed-size', '40', '--rounds', '3', '--epochs', '1', '--substitute', 'papernot-mlp', '--eval-size', '50', '--epsilons', '0.3', '--no-boundary', '--no-targeted'];

describe('how to continue a stopped run', () => {
  it('a campaign refused for its budget prints a resume command naming --api-key, not the key', async () => {
    const out = join(dir, 'budget');
    // --allow-partial: past the planned-cost check (which refuses a known budget too small before paying
    // anything, with no run folder to resume), so the budget runs out mid-run.
    const run = adversary(['run', '--victim', victim.url, '--out', out, '--allow-partial', ...campaign], KEYS[0].key);
    expect(await run.exit).toBe(1);
    expect(run.stderr()).toContain('budget');
    expect(run.stderr()).toContain(`npm run adversary -- run --resume ${out} --api-key KEY`);
    expect(run.stderr()).toContain('TRANSFERLAB_API_KEY');
    expect(run.stderr()).not.toContain(KEYS[0].key);
  }, 120_000);

  it('Ctrl-C during a campaign prints how to continue and exits 130', async () => {
    const out = join(dir, 'ctrl-c-campaign');
    const run = adversary(['run', '--victim', victim.url, '--out', out, ...campaign], KEYS[1].key);
    expect(await interruptOncePaid(run, out)).toBe(130);
    expect(run.stderr()).toContain(`interrupted; continue with npm run adversary -- run --resume ${out} --api-key KEY`);
    expect(run.stderr()).not.toContain(KEYS[1].key);
    expect(readFileSync(join(out, 'queries.jsonl'), 'utf8').length).toBeGreaterThan(0);
  }, 120_000);

  it('Ctrl-C during a query attack prints how to continue and exits 130', async () => {
    const out = join(dir, 'ctrl-c-query');
    const run = adversary(['query-attack', '--victim', victim.url, '--out', out, '--images', '20', '--queries-per-image', '2000'], KEYS[1].key);
    expect(await interruptOncePaid(run, out)).toBe(130);
    expect(run.stderr()).toContain(`interrupted; continue with npm run adversary -- query-attack --resume ${out} --api-key KEY`);
  }, 120_000);
});
