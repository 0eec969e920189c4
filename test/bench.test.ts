import { describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { runBench } from '../scripts/bench.js';
import { ensureTestVictim } from './fixtures.js';

/**
 * Keeps the benchmark's code path alive: the quick mode on tiny sizes, a real victim process
 * included. It asserts the figures exist and are sane, never how fast they are.
 */
describe('npm run bench (quick path, tiny sizes)', () => {
  it('measures models, the victim over HTTP and a campaign', async () => {
    const model = await ensureTestVictim();
    await initBackend();
    const lines: string[] = [];
    const figures = (await runBench({
      quick: true,
      trainImages: 256,
      inferImages: 200,
      gradImages: 64,
      rounds: 2,
      archs: ['lenet'],
      model,
      http: true,
      campaign: true,
      log: (l) => lines.push(l),
    })) as {
      backend: string;
      models: { trainImagesPerSecond: number; inferenceImagesPerSecond: number; inputGradientImagesPerSecond: number }[];
      http: { httpImagesPerSecond: number; singleImage: { p50Ms: number; p99Ms: number }; matrix: { batch: number; encoding: string; clients: number; imagesPerSecond: number; p50Ms: number; p99Ms: number }[] };
      campaign: { wallSeconds: number; runs: unknown[]; attackQueries: number; tensorsAfterRound: number[]; phases: Record<string, number> };
    };
    expect(figures.backend).toBeTruthy();
    expect(figures.models[0].trainImagesPerSecond).toBeGreaterThan(0);
    expect(figures.models[0].inferenceImagesPerSecond).toBeGreaterThan(0);
    expect(figures.models[0].inputGradientImagesPerSecond).toBeGreaterThan(0);
    expect(figures.http.httpImagesPerSecond).toBeGreaterThan(0);
    expect(figures.http.singleImage.p99Ms).toBeGreaterThanOrEqual(figures.http.singleImage.p50Ms);
    // Every mix of batch 1 / 100, uint8 / JSON, 1 / 8 clients, each with a rate and ordered percentiles.
    expect(figures.http.matrix.map((c) => `${c.batch} ${c.encoding} ${c.clients}`).sort()).toEqual(
      ['1 json 1', '1 json 8', '1 uint8 1', '1 uint8 8', '100 json 1', '100 json 8', '100 uint8 1', '100 uint8 8']);
    for (const c of figures.http.matrix) {
      expect(c.imagesPerSecond).toBeGreaterThan(0);
      expect(c.p99Ms).toBeGreaterThanOrEqual(c.p50Ms);
    }
    expect(figures.campaign.attackQueries).toBe(100);
    expect(figures.campaign.runs).toHaveLength(1);
    expect(Object.keys(figures.campaign.phases)).toEqual(expect.arrayContaining(['labelling', 'training', 'augmentation', 'crafting', 'measurement']));
    // No tensor leaks across substitute rounds.
    const [first, ...rest] = figures.campaign.tensorsAfterRound;
    for (const n of rest) expect(n).toBe(first);
    expect(lines.length).toBeGreaterThan(0);
  });
});
