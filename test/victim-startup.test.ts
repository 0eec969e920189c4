import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnVictim } from '../victim/spawn.js';
import { ensureTestVictim } from './fixtures.js';

/** Start-up refusals: each must be a clear one-line error and a non-zero exit, never a served model. */
let dir: string;
let modelDir: string;
beforeAll(async () => {
  modelDir = await ensureTestVictim();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-victim-startup-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const refusal = async (args: string[]): Promise<string> => {
  try {
    const v = await spawnVictim({ args: [...args, '--port', '0', '--audit-log', join(dir, 'audit.jsonl'), '--ledger', join(dir, 'ledger.jsonl')], timeoutMs: 60_000 });
    await v.stop();
    return 'started';
  } catch (e) {
    return (e as Error).message;
  }
};

describe('victim start-up', () => {
  it('refuses a model whose weights do not match metadata.json', async () => {
    const tampered = join(dir, 'tampered');
    cpSync(modelDir, tampered, { recursive: true });
    const weights = readFileSync(join(tampered, 'weights.bin'));
    weights[100] ^= 0xff;
    writeFileSync(join(tampered, 'weights.bin'), weights);
    expect(await refusal(['--model', tampered])).toMatch(/error \(model_tampered\): weights in .* do not match metadata\.json/);
  });

  it('refuses a missing model instead of training one outside the default folder', async () => {
    expect(await refusal(['--model', join(dir, 'nothing-here'), '--no-train'])).toMatch(/error \(model_missing\): no model in .*npm run victim:train/);
  });

  it('says a missing ONNX file does not exist and how to get one, never to train it', async () => {
    const message = await refusal(['--model', join(dir, 'nope.onnx')]);
    expect(message).toMatch(/error \(model_missing\): .*nope\.onnx does not exist\. Give the path of an existing ONNX file.*scripts\/export-victim\.ts/);
    expect(message).not.toContain('victim:train');
  });

  it('refuses a keys file with a weak key without printing it', async () => {
    writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: [{ id: 'eve', key: 'hunter2hunter2', budget: 5 }] }));
    const message = await refusal(['--model', modelDir, '--keys', join(dir, 'keys.json')]);
    expect(message).toMatch(/error \(invalid_keys_file\).*at least 16 characters/);
    expect(message).not.toContain('hunter2hunter2');
  });
});
