import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../scripts/demo.js';

/** `npm run demo` with a victim that cannot start leaves no empty run folder behind. */
const dir = mkdtempSync(join(tmpdir(), 'transferlab-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('demo with a bad --model', () => {
  it('fails without leaving its run folder', async () => {
    const out = join(dir, 'demo-run');
    await expect(main(['--model', join(dir, 'nope.onnx'), '--out', out, '--backend', 'cpu'])).rejects.toThrow(/victim exited/);
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('keeps a folder the user already had', async () => {
    const out = join(dir, 'mine');
    mkdirSync(out);
    await expect(main(['--model', join(dir, 'nope.onnx'), '--out', out, '--backend', 'cpu'])).rejects.toThrow(/victim exited/);
    expect(existsSync(out)).toBe(true);
    expect(readdirSync(out)).toContain('victim');
  }, 60_000);
});
