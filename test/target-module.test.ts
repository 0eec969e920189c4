/** The module target with a file written as a user would (test/fixtures/target-module.ts), and a broken one. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileRunStore } from '../adversary/run/store.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { classify } from './fixtures/target-module.js';
import { images } from './tiny-model-server.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'target-module.ts');
const seen = () => (globalThis as { targetModuleImages?: number }).targetModuleImages ?? 0;
const open = (file: string, dir?: string, budget?: number) =>
  createTargetOracle({ url: 'http://127.0.0.1:1', target: { target: 'module', targetFile: file, budget }, store: dir ? fileRunStore(dir) : undefined });

describe('module target', () => {
  it("labels through the module's predict (names mapped to indices), counts what it saw, and resumes for free", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tl-module-'));
    const x = images(12, 9);
    const before = seen();
    const o1 = await open(FIXTURE, dir);
    expect(await o1.info()).toMatchObject({ inputShape: [4, 4, 1], classes: 3, classNames: ['low', 'mid', 'high'], maxBatch: 5 });
    const got = await o1.label(x, 12, 'attack');
    expect([...got]).toEqual(classify(Float32Array.from(x, (v) => Math.round(v * 255)), 12));
    expect(new Set(got).size).toBeGreaterThan(1);
    expect(seen() - before).toBe(12);
    expect(o1.counts().attack).toBe(12);
    await o1.close();
    const o2 = await open(FIXTURE, dir, 12);
    await o2.label(x, 12, 'measurement');
    expect(o2.counts()).toEqual({ attack: 0, measurement: 0, cached: 12 });
    await expect(o2.label(images(1, 10), 1, 'attack')).rejects.toMatchObject({ code: 'budget_exhausted' });
    expect(seen() - before).toBe(12);
    await o2.close();
  });

  it('a module without predict, or whose predict throws, is an error naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tl-module-bad-'));
    const noPredict = join(dir, 'no-predict.mjs');
    writeFileSync(noPredict, 'export const info = { inputShape: [4, 4, 1], classes: 3 };\n');
    await expect(open(noPredict)).rejects.toThrow(/target module .*no-predict\.mjs exports no predict\(images, count\) function/);
    const throws = join(dir, 'throws.mjs');
    writeFileSync(throws, "export default { info: { inputShape: [4, 4, 1], classes: 3, range: [0, 9] }, predict() { throw new Error('quota exceeded'); } };\n");
    await expect(open(throws)).rejects.toThrow(/info of target module .*throws\.mjs:\n {2}- range/);
    const failing = join(dir, 'failing.mjs');
    writeFileSync(failing, "export default { info: { inputShape: [4, 4, 1], classes: 3 }, predict() { throw new Error('quota exceeded'); } };\n");
    const o = await open(failing);
    await expect(o.label(images(2, 11), 2, 'attack')).rejects.toThrow(/target module .*failing\.mjs: predict\(\) threw: quota exceeded/);
    await o.close();
  });
});
