import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_TS, ROOT } from '../victim/spawn.js';

/**
 * A child process started from the sources finds tsx's loader from the project, not from its working
 * directory: the demo in an empty folder starts its victim there (it could not, when the loader was a bare `tsx`).
 */
describe('starting the project\'s own modules in a child process', () => {
  it('works from a folder outside the project', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'transferlab-entry-'));
    try {
      const r = spawnSync(NODE_TS[0], [...NODE_TS.slice(1), resolve(ROOT, 'victim/cli.ts'), '--help'], { cwd, encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).not.toContain('ERR_MODULE_NOT_FOUND');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('--model');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }, 90_000);
});
