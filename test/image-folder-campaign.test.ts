import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CampaignResults } from '../adversary/campaign/results.js';
import { initBackend } from '../shared/engine/backend.js';
import { NODE_TS, ROOT, spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { trainVictim } from '../victim/train/train.js';
import { SHAPE_CLASSES, writeShapesTree } from './shapes-tree.js';

/**
 * An ImageFolder dataset from seed set to report: RGB PNGs of coloured shapes written here, a lenet
 * victim trained on them, served by a real victim process, attacked over HTTP by the adversary's
 * CLI with --dataset pointing at the same tree; the report's pictures are in colour.
 */
const SIZE = 16;
let dir: string;
let tree: string;
let victim: VictimProcess;
let accuracy: number;

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-imagefolder-'));
  tree = writeShapesTree(join(dir, 'shapes'), { size: SIZE, perClass: 80, seed: 3 });
  const model = join(dir, 'victim');
  const meta = await trainVictim({ arch: 'lenet', dataset: tree, epochs: 12, batchSize: 32, learningRate: 0.003, seed: 2, out: model });
  accuracy = Number(meta.testAccuracy);
  victim = await spawnVictim({
    args: ['--model', model, '--port', '0', '--no-train', '--audit-log', join(dir, 'audit.jsonl'), '--ledger', join(dir, 'ledger.jsonl'), '--rate-limit', '1000'],
    timeoutMs: 120_000,
  });
}, 120_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('an ImageFolder of RGB PNGs, from seed set to report', () => {
  it('trains a victim on the tree that the service describes by its shape and class names (from its metadata)', async () => {
    expect(accuracy).toBeGreaterThan(0.8);
    const info = (await axios.get(`${victim.url}/v1/info`)).data as { dataset: string; inputShape: number[]; classes: number; classNames: string[] };
    expect(info).toMatchObject({ dataset: 'shapes', inputShape: [SIZE, SIZE, 3], classes: 3, classNames: [...SHAPE_CLASSES].sort() });
  });

  it('runs the campaign CLI over HTTP and writes results and a report with colour pictures', async () => {
    const out = join(dir, 'run');
    const args = ['adversary/cli.ts', 'run', '--victim', victim.url, '--dataset', tree, '--out', out, '--seed-size', '12', '--eval-size', '36',
      '--rounds', '2', '--epochs', '4', '--substitute', 'lenet', '--shift', '1', '--epsilons', '0.1', '0.3', '--target-class', 'next'];
    const cfg = join(dir, 'small.yaml');
    writeFileSync(cfg, 'boundary:\n  images: 12\n  maps: 1\n  grid: 7\n');
    const child = spawn(NODE_TS[0], [...NODE_TS.slice(1), ...args, '--config', cfg], { cwd: ROOT, env: { ...process.env, TRANSFERLAB_QUIET: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code, output).toBe(0);

    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as CampaignResults;
    expect(r.dataset).toMatchObject({ name: 'shapes', kind: 'image-folder', shape: [SIZE, SIZE, 3], classes: 3, testImages: 48 });
    expect(r.queries.attack).toBe(24);
    expect(r.victimCleanAccuracy!).toBeGreaterThan(0.7);
    expect(r.perClass[0].matrix).toHaveLength(3);
    expect(r.boundary?.maps).toHaveLength(1);
    // RayS's average boundary distance, one per class of the victim's (3, not MNIST's 10).
    expect(r.boundary?.nearest?.adbd.victim).toHaveLength(3);
    expect(r.boundary?.nearest?.adbd.substitute).toHaveLength(3);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('input 16×16×3');
    // The grid draws the RGB images as RGB: some pixels have clearly unequal channels.
    const grid = PNG.sync.read(readFileSync(join(out, 'images', 'grid-untargeted.png')));
    let coloured = 0;
    for (let o = 0; o < grid.data.length; o += 4) if (Math.abs(grid.data[o] - grid.data[o + 2]) > 100) coloured++;
    expect(coloured).toBeGreaterThan(500);
    expect(existsSync(join(out, 'images', 'boundary-map-1.png'))).toBe(true);
  });
});
