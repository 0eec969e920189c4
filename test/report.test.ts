import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRuns, formatTable, CSV_COLUMNS } from '../adversary/report/compare.js';
import { writeReport } from '../adversary/report/report.js';
import { pointNear } from '../adversary/report/html.js';
import type { BoundaryResults } from '../adversary/campaign/boundary.js';
import type { CampaignResults } from '../adversary/campaign/results.js';
import type { SweepPoint } from '../adversary/campaign/transfer.js';
import { boundaryGap } from '../shared/statistics.js';

/**
 * The report and comparison pages, rendered from synthetic but schema-valid results: this suite
 * checks rendering (every chart and picture shows, nothing errors, nothing is fetched), not the
 * attack, so it needs no model and no victim. The browser half runs real headless Chromium.
 */
const CHROMIUM = '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const SKIP_NOTE = HAS_CHROMIUM ? '' : ` [skipped: ${CHROMIUM} not found; install the Debian package "chromium"]`;
if (!HAS_CHROMIUM) console.warn(`report.test.ts: browser checks skipped: ${CHROMIUM} not found (apt-get install chromium)`);

const EPS = [0.1, 0.2, 0.3, 0.4];

function sweep(scale: number, nullTransferAt?: number): SweepPoint[] {
  return (['untargeted', 'targeted'] as const).flatMap((mode) =>
    EPS.map((epsilon) => ({
      mode,
      epsilon,
      misclassificationRate: Math.min(1, epsilon * 2 * scale),
      transferRate: epsilon === nullTransferAt ? null : Math.min(1, epsilon * 1.8 * scale),
      targetedSuccessRate: mode === 'targeted' ? Math.min(1, epsilon * scale) : null,
      craftModelSuccessRate: Math.min(1, epsilon * 2.5),
      measurementQueries: 200,
    })),
  );
}

function matrix(seed: number): number[][] {
  return Array.from({ length: 10 }, (_, t) => Array.from({ length: 10 }, (_, v) => (t === v ? 12 : (t * 7 + v * 3 + seed) % 5)));
}

function pngFile(path: string, width: number, height: number): void {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = (i * 37) % 256;
    png.data[i * 4 + 1] = (i * 11) % 256;
    png.data[i * 4 + 2] = 128;
    png.data[i * 4 + 3] = 255;
  }
  writeFileSync(path, PNG.sync.write(png));
}

function boundary(sub: (number | null)[], vic: (number | null)[]): BoundaryResults {
  const labels = Array.from({ length: 9 }, (_, i) => i % 10);
  const map = { index: 3, trueLabel: 5, substituteLabel: 5, victimLabel: 5, grid: 3, extent: 0.5, substituteLabels: labels, victimLabels: labels, agreement: 0.87, queries: 9, image: 'images/boundary-map-1.png', caption: 'evaluation image 3 (digit 5)' };
  return {
    direction: 'substitute-fgsm-sign',
    craftLabel: 'substitute',
    epsilonMax: 1,
    precision: 1 / 255,
    images: sub.length,
    truth: sub.map((_, i) => i % 10),
    substituteDistances: sub,
    victimDistances: vic,
    victimFlippedTo: vic.map((v) => (v === null ? null : 1)),
    substituteFlippedTo: sub.map((v) => (v === null ? null : 2)),
    stats: boundaryGap(sub, vic),
    maps: [map],
    mapAgreement: 0.87,
    queries: { distances: 320, maps: 9 },
    probes: { distances: 330, maps: 9 },
  };
}

function synthetic(name: string, over: Partial<CampaignResults> = {}, config: Record<string, unknown> = {}): CampaignResults {
  const sub = Array.from({ length: 40 }, (_, i) => (i % 9 === 0 ? null : 0.02 + (i % 13) * 0.02));
  const vic = sub.map((s, i) => (i % 11 === 0 || s === null ? null : s + ((i % 5) - 1) * 0.02));
  return {
    schemaVersion: 1,
    kind: 'campaign',
    name,
    createdAt: '2025-01-01T00:00:00.000Z',
    seed: 1,
    backend: 'wasm',
    threads: 2,
    cores: 2,
    versions: { transferlab: '0.1.0', tfjs: '4.22.0', node: 'v20.19.0' },
    victim: { url: 'http://127.0.0.1:8080', info: { dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, inputRange: [0, 1], maxBatch: 1000, output: 'label' } },
    config: { victim: 'http://127.0.0.1:8080', apiKey: 'sk-secret-should-not-appear', seed: 1, seedSize: 150, rounds: 3, substitute: 'substitute-cnn', attack: 'fgsm', steps: 10, targetClass: 'random', epsilons: EPS, boundary: { enabled: true, images: 40 }, out: `runs/${name}`, ...config },
    queries: { attack: 1200, measurement: 3400, cached: 5 },
    victimCleanAccuracy: 0.985,
    substituteCleanAccuracy: 0.81,
    agreement: 0.83,
    rounds: [0, 1, 2].map((round) => ({ round, substituteSize: 150 * 2 ** round, attackQueries: 150 * 2 ** round, substituteAccuracy: 0.5 + round * 0.15, agreement: 0.52 + round * 0.15, lambda: 0.1, trainSeconds: 3.2, augmentSeconds: 0.4 })),
    epsilons: sweep(1, 0.1),
    perClass: (['untargeted', 'targeted'] as const).flatMap((mode) =>
      EPS.map((epsilon, i) => ({ mode, epsilon, matrix: matrix(i), transferRate: Array.from({ length: 10 }, (_, c) => (c === 7 ? null : (c + i) / 14)) })),
    ),
    boundary: boundary(sub, vic),
    images: { grids: ['images/grid-untargeted.png'], maps: ['images/boundary-map-1.png'] },
    durationSeconds: 95.5,
    phases: { labelling: 2, training: 60, augmentation: 4, crafting: 10, measurement: 12, boundary: 7 },
    ...over,
  };
}

function runFolder(root: string, name: string, r: CampaignResults): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'images'), { recursive: true });
  pngFile(join(dir, 'images', 'grid-untargeted.png'), 120, 60);
  pngFile(join(dir, 'images', 'boundary-map-1.png'), 66, 33);
  writeFileSync(join(dir, 'results.json'), JSON.stringify(r, null, 2));
  return dir;
}

interface PageCheck {
  errors: string[];
  external: string[];
  svgs: { width: number; height: number }[];
  imgs: { natural: number; width: number; height: number }[];
}

/** Open a page offline-style and measure every chart and picture as rendered. */
async function inspect(browser: Browser, file: string, screenshot?: string): Promise<PageCheck> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const external: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => {
    if (!/^(file|data):/.test(r.url())) external.push(r.url());
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  const svgs = await page.locator('figure.chart > svg').evaluateAll((els) =>
    els.map((e) => {
      const b = e.getBoundingClientRect();
      return { width: b.width, height: b.height };
    }),
  );
  const imgs = await page.locator('img').evaluateAll((els) =>
    els.map((e) => {
      const i = e as HTMLImageElement;
      const b = i.getBoundingClientRect();
      return { natural: i.complete ? i.naturalWidth : 0, width: b.width, height: b.height };
    }),
  );
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  return { errors, external, svgs, imgs };
}

describe('run report and comparison', () => {
  let root: string;
  let browser: Browser | undefined;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'transferlab-report-'));
    if (HAS_CHROMIUM) {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('picks ε 0.3 or the nearest measured ε', () => {
    const pts = sweep(1).filter((p) => p.mode === 'untargeted');
    expect(pointNear(pts, 'untargeted')?.epsilon).toBe(0.3);
    expect(pointNear(pts.filter((p) => p.epsilon !== 0.3), 'untargeted')?.epsilon).toBe(0.2);
  });

  it('writes a self-contained, escaped report.html', async () => {
    const dir = runFolder(root, 'escaped', synthetic('run <b>x</b>'));
    const path = await writeReport(dir, JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as CampaignResults);
    expect(path).toBe(join(dir, 'report.html'));
    const html = readFileSync(path, 'utf8');
    expect(html).not.toContain('<b>x</b>');
    expect(html).toContain('run &lt;b&gt;x&lt;/b&gt;');
    expect(html).not.toContain('sk-secret-should-not-appear');
    expect(html).not.toMatch(/<script|https?:\/\/[^"]*\.(js|css)/);
    for (const id of ['AML.T0040', 'AML.T0005.001', 'AML.T0024.002', 'AML.T0043.002', 'AML.T0042', 'AML.T0015']) expect(html).toContain(id);
    expect(html).not.toContain('AML.T0043.000');
    expect(html).toContain('data:image/png;base64,');
    expect(html).toContain('agreement 87.0 %');
    expect(html).toContain('Untargeted attack: clean images');
  });

  it('a white-box run names AML.T0043.000 and renders without rounds or boundary', async () => {
    const wb = synthetic('wb', { kind: 'whitebox', rounds: [], boundary: null, substituteCleanAccuracy: null, agreement: null, queries: { attack: 0, measurement: 0, cached: 0 } });
    const dir = runFolder(root, 'wb', wb);
    const html = readFileSync(await writeReport(dir, wb), 'utf8');
    expect(html).toContain('AML.T0043.000');
    expect(html).not.toContain('AML.T0043.002');
    expect(html).toContain('not measured in this run');
  });

  it(`renders in headless Chromium: no errors, no network, every chart and image visible${SKIP_NOTE}`, { skip: !HAS_CHROMIUM }, async () => {
    const dir = runFolder(root, 'full', synthetic('full'));
    const wb = synthetic('baseline', { kind: 'whitebox', epsilons: sweep(1.6), rounds: [], boundary: null });
    const path = await writeReport(dir, synthetic('full'), { whitebox: wb });
    const html = readFileSync(path, 'utf8');
    expect(html).toContain('white-box baseline');
    expect(html).toContain('AML.T0043.000');
    const check = await inspect(browser as Browser, path, '/tmp/report.png');
    expect(check.errors).toEqual([]);
    expect(check.external).toEqual([]);
    // ε curves, rounds, 2 × (heatmap + per-class bars), boundary distances.
    expect(check.svgs.length).toBeGreaterThanOrEqual(7);
    for (const s of check.svgs) expect(s.width * s.height).toBeGreaterThan(0);
    // The boundary map and the image grid.
    expect(check.imgs.length).toBe(2);
    for (const i of check.imgs) {
      expect(i.natural).toBeGreaterThan(0);
      expect(i.width * i.height).toBeGreaterThan(0);
    }
  });

  it('compare: key figures, differing settings, CSV and HTML', async () => {
    const a = runFolder(root, 'cmp-a', synthetic('cmp-a'));
    const b = runFolder(root, 'cmp-b', synthetic('cmp-b', { epsilons: sweep(0.7), durationSeconds: 50 }, { seedSize: 300, substitute: 'lenet', apiKey: 'other-secret' }));
    const out = join(root, 'cmp-out');
    const result = await compareRuns([a, b], out);
    expect(result.rows.map((r) => r.run)).toEqual(['cmp-a', 'cmp-b']);
    expect(result.differing).toEqual(['seedSize', 'substitute']);
    expect(result.rows[0].epsilon).toBe(0.3);
    expect(result.rows[0].misclassificationRate).toBeCloseTo(0.6);
    expect(result.rows[1].transferRate).toBeCloseTo(0.3 * 1.8 * 0.7);
    expect(result.rows[0].bestTargetedSuccessRate).toBeCloseTo(0.4);
    expect(result.rows[1].settings).toEqual({ seedSize: '300', substitute: 'lenet' });

    const csv = readFileSync(result.csvPath, 'utf8').trim().split('\n');
    expect(csv[0].split(',')).toEqual([...CSV_COLUMNS, 'seedSize', 'substitute']);
    expect(csv).toHaveLength(3);
    expect(csv[2]).toContain(',300,lenet');
    expect(readFileSync(result.csvPath, 'utf8')).not.toContain('secret');

    const text = formatTable(result.rows);
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^run\s+victim acc.*seedSize\s+substitute$/);
    expect(text).toContain('98.5 %');

    expect(existsSync(result.htmlPath)).toBe(true);
    if (browser) {
      const check = await inspect(browser, result.htmlPath, '/tmp/compare.png');
      expect(check.errors).toEqual([]);
      expect(check.external).toEqual([]);
      expect(check.svgs.length).toBe(2);
      for (const s of check.svgs) expect(s.width * s.height).toBeGreaterThan(0);
    }
  });

  it('compare names the folder that has no results.json', async () => {
    const empty = join(root, 'not-a-run');
    mkdirSync(empty, { recursive: true });
    await expect(compareRuns([empty], join(root, 'x'))).rejects.toThrow(/not-a-run has no results\.json/);
  });
});
