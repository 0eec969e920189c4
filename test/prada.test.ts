import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { adversarySplit, IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { fromLayers, type Model } from '../shared/model/model.js';
import { loadModel } from '../shared/model/model-io.js';
import { createRng, permutation } from '../shared/random.js';
import { MemoryIdempotencyStore, parseIdempotencyKey } from '../victim/store/idempotency.js';
import { DistanceKernel, ImageSet, bruteForceNearest } from '../victim/detect/nearest.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { normalQuantile, shapiroWilk, shapiroWilkSorted, swCoefficients } from '../victim/detect/shapiro-wilk.js';
import { ensureTestVictim } from './fixtures.js';
import { naturalStream, papernotStream, type QueryStream } from '../scripts/papernot-stream.js';

/** The detector's parts, without a model: the normality test, the distance kernel, bounds, idempotency. */

// Reference values from scipy.stats.shapiro 1.17 (AS R94) and scipy.stats.norm.ppf.
const SW_CASES: { name: string; x: number[]; w: number; p: number }[] = [
  // Shapiro & Wilk's (1965) own example: weights of 11 men; their table gives W = 0.79.
  { name: 'weights of 11 men', x: [148, 154, 158, 160, 161, 162, 166, 170, 182, 195, 236], w: 0.7888146948631716, p: 0.006703814061898823 },
  { name: 'n = 3', x: [1, 2, 4], w: 0.9642857142857142, p: 0.6368868450289689 },
  { name: 'n = 4', x: [2.1, 3.5, 3.9, 7.0], w: 0.9208077973601706, p: 0.5414848459353214 },
  { name: 'n = 5', x: [1, 2, 3, 4, 10], w: 0.8357883166461942, p: 0.1536125843490888 },
  { name: 'n = 7', x: [0.5, 1.2, 1.9, 2.0, 2.6, 3.1, 4.4], w: 0.9818345884376322, p: 0.967964116350933 },
  { name: 'squares 1..20', x: Array.from({ length: 20 }, (_, i) => (i + 1) ** 2), w: 0.9061306286053874, p: 0.053809589128654696 },
  { name: 'uniform grid 0..29', x: Array.from({ length: 30 }, (_, i) => i), w: 0.9574505592737159, p: 0.2662326827959217 },
  { name: 'exponential quantiles, n = 200', x: Array.from({ length: 200 }, (_, i) => -Math.log(1 - (i + 0.5) / 200)), w: 0.8237525605585375, p: 2.692416801946451e-14 },
  { name: 'two normal modes, n = 100', x: Array.from({ length: 100 }, (_, i) => normalQuantile((i + 0.5) / 100) + (i % 2 ? 0 : 6)), w: 0.88128066960487, p: 2.0568959103932214e-7 },
  { name: 'sum of sines, n = 1000', x: Array.from({ length: 1000 }, (_, i) => Math.sin(i * 1.7) + Math.sin(i * 0.31)), w: 0.981071449476532, p: 4.104097401051497e-10 },
];

describe('Shapiro–Wilk (Royston 1992, AS R94)', () => {
  it.each(SW_CASES)('$name: W and p as scipy computes them', ({ x, w, p }) => {
    const got = shapiroWilk(x);
    expect(got.w).toBeCloseTo(w, 8);
    expect(got.p).toBeCloseTo(p, 6);
    expect(Math.abs(got.p - p) / p).toBeLessThan(1e-5);
  });

  it('a normal sample gives W near 1; a skewed or bimodal one does not', () => {
    const normal = Array.from({ length: 300 }, (_, i) => normalQuantile((i + 0.5) / 300));
    expect(shapiroWilk(normal).w).toBeGreaterThan(0.999);
    const rand = createRng(5);
    // Box–Muller normals against the same sample with 20 % of it moved into a tight cluster far below.
    const sample = Array.from({ length: 500 }, () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
    expect(shapiroWilk(sample).w).toBeGreaterThan(0.99);
    const contaminated = sample.map((v, i) => (i % 5 === 0 ? -3 + 0.05 * v : v));
    expect(shapiroWilk(contaminated).w).toBeLessThan(0.95);
  });

  it('normal quantiles match scipy.stats.norm.ppf', () => {
    const ppf: [number, number][] = [
      [1e-10, -6.361340902404056], [0.01, -2.3263478740408408], [0.075, -1.4395314709384563],
      [0.3, -0.5244005127080409], [0.5, 0], [0.9, 1.2815515655446004], [0.999999, 4.753424308817087],
    ];
    for (const [p, z] of ppf) expect(normalQuantile(p)).toBeCloseTo(z, 12);
  });

  it('coefficients are antisymmetric weights of unit norm; bad sizes and constant samples are handled', () => {
    for (const n of [3, 4, 11, 12, 101, 300]) {
      const a = swCoefficients(n);
      expect(2 * a.reduce((s, v) => s + v * v, 0)).toBeCloseTo(1, 6);
      expect(a[0]).toBeGreaterThanOrEqual(a[a.length - 1]);
    }
    expect(() => shapiroWilk([1, 2])).toThrow(/3\.\.5000/);
    expect(shapiroWilkSorted([2, 2, 2, 2])).toEqual({ w: 1, p: 1 });
  });
});

describe('nearest-image distances (wasm SIMD)', () => {
  const test = loadMnist('test');
  const image = (i: number) => test.pixels.subarray(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);

  it('equal the scalar brute-force scan exactly, including extreme pixels', () => {
    const kernel = new DistanceKernel(64);
    const set = new ImageSet(kernel);
    const points = new Uint8Array(64 * IMAGE_SIZE);
    for (let k = 0; k < 64; k++) {
      const img = k === 0 ? new Uint8Array(IMAGE_SIZE).fill(255) : image(k * 7);
      set.add(img);
      points.set(img, k * IMAGE_SIZE);
    }
    expect(set.count).toBe(64);
    set.add(image(9999)); // full: ignored
    expect(set.count).toBe(64);
    for (const q of [1, 2, 500, 4321, 9998]) expect(set.nearest(image(q))).toBe(bruteForceNearest(image(q), points, 64));
    expect(set.nearest(new Uint8Array(IMAGE_SIZE))).toBe(bruteForceNearest(new Uint8Array(IMAGE_SIZE), points, 64));
    expect(set.nearest(image(7))).toBe(0);
    expect(new ImageSet(kernel).nearest(image(1))).toBe(Infinity);
  });

  it('equal the brute-force scan for any image size (8×8×1, 12×10×3, 32×32×3), reused slabs included', () => {
    for (const pixels of [64, 360, 3072]) {
      const kernel = new DistanceKernel(20, pixels);
      const rng = createRng(pixels);
      const img = () => Uint8Array.from({ length: pixels }, () => Math.floor(rng() * 256));
      const first = new ImageSet(kernel);
      for (let k = 0; k < 20; k++) first.add(img());
      first.release(); // its slab, full of other images, is handed to the next set
      const set = new ImageSet(kernel);
      const points = new Uint8Array(20 * pixels);
      for (let k = 0; k < 20; k++) {
        const p = k === 0 ? new Uint8Array(pixels).fill(255) : img();
        set.add(p);
        points.set(p, k * pixels);
      }
      for (let t = 0; t < 5; t++) {
        const q = img();
        expect(set.nearest(q)).toBe(bruteForceNearest(q, points, 20, pixels));
      }
      expect(set.nearest(points.subarray(5 * pixels, 6 * pixels))).toBe(0);
    }
  });

  it('reuses a released slab instead of growing', () => {
    const kernel = new DistanceKernel(300);
    const sets = Array.from({ length: 10 }, () => new ImageSet(kernel));
    sets.forEach((s) => s.add(image(1)));
    const bytes = kernel.memoryBytes;
    sets[3].release();
    const again = new ImageSet(kernel);
    again.add(image(2));
    expect(kernel.memoryBytes).toBe(bytes);
    expect(again.nearest(image(2))).toBe(0);
    expect(sets[4].nearest(image(1))).toBe(0);
  });
});

describe('PRADA detector bounds', () => {
  const test = loadMnist('test');

  it('works on colour images and any class count, and refuses images its integer sums cannot hold', () => {
    const pixels = 12 * 10 * 3;
    const det = new PradaDetector({ pixels, classes: 5, classCap: 50 });
    const rng = createRng(3);
    const n = 400;
    const images = Float32Array.from({ length: n * pixels }, () => Math.round(rng() * 255) / 255);
    const labels = Int32Array.from({ length: n }, () => Math.floor(rng() * 5));
    det.observe('rgb', images, labels);
    const [summary] = det.summaries();
    expect(summary.classSetSizes).toHaveLength(5);
    expect(summary.queries).toBe(n);
    // Uniform noise images are all far apart: roughly normal distances, W computed, not flagged.
    expect(summary.w).not.toBeNull();
    expect(det.isFlagged('rgb')).toBe(false);
    expect(() => new PradaDetector({ pixels: 224 * 224 * 3 })).toThrow(/1\.\.33025 values/);
  });

  it('keeps class sets within classCap, tracks at most maxClients, and keeps flags of forgotten clients', () => {
    const det = new PradaDetector({ classCap: 20, maxClients: 3, window: 150 });
    det.observe('a', test.images.subarray(0, 2000 * IMAGE_SIZE), test.labels.subarray(0, 2000));
    const a = det.summaries()[0];
    expect(Math.max(...a.classSetSizes)).toBe(20);
    expect(a.queries).toBe(2000);
    det.restoreFlag({ clientId: 'flagged', w: 0.5, queries: 1, distances: 1 });
    for (const id of ['b', 'c', 'd', 'e']) det.observe(id, test.images.subarray(0, IMAGE_SIZE), test.labels.subarray(0, 1));
    expect(det.summaries().map((s) => s.clientId)).toEqual(['c', 'd', 'e']);
    expect(det.isFlagged('flagged')).toBe(true);
    det.forget('flagged');
    expect(det.isFlagged('flagged')).toBe(false);
  });

  it('refuses settings it cannot honour', () => {
    expect(() => new PradaDetector({ delta: 1.5 })).toThrow(/delta/);
    expect(() => new PradaDetector({ window: 50 })).toThrow(/window/);
  });
});

describe('idempotency store (memory)', () => {
  const ticketOf = (c: ReturnType<MemoryIdempotencyStore['claim']>) => {
    if (!('ticket' in c)) throw new Error('expected a ticket');
    return c.ticket;
  };

  it('replays charged labels, refuses a different body, waits for one in flight, forgets failures', async () => {
    const cache = new MemoryIdempotencyStore({ capacity: 2 });
    const t = ticketOf(cache.claim('alice', 'k1', 'body'));
    // A repeat while the first is in flight waits for it rather than claiming the key too.
    const waiting = cache.replayOrClaim('alice', 'k1', 'body');
    cache.finish(t, Int32Array.from([3, 1]));
    expect(await waiting).toEqual({ labels: Int32Array.from([3, 1]) });
    expect('ticket' in (await cache.replayOrClaim('bob', 'k1', 'body'))).toBe(true); // scoped to the caller
    expect(() => cache.claim('alice', 'k1', 'other body')).toThrow(expect.objectContaining({ code: 'idempotency_key_reused', status: 422 }));
    cache.abandon(t); // already charged: the entry stays
    expect('labels' in (await cache.replayOrClaim('alice', 'k1', 'body'))).toBe(true);

    const failed = ticketOf(cache.claim('alice', 'k2', 'b2'));
    const retry = cache.replayOrClaim('alice', 'k2', 'b2');
    cache.abandon(failed);
    expect('ticket' in (await retry)).toBe(true); // the retry is served (and charged) normally
    cache.claim('alice', 'k3', 'b3');
    expect(cache.size).toBe(2); // LRU bound
    expect(() => parseIdempotencyKey('has space')).toThrow(expect.objectContaining({ code: 'invalid_idempotency_key' }));
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
  });
});

/** Feed a stream to a fresh detector in requests of `batch`; the query (1-based) that flagged it, or null. */
function flaggedAt(stream: QueryStream, batch = 100, det = new PradaDetector()): number | null {
  for (let start = 0; start < stream.count; start += batch) {
    const n = Math.min(batch, stream.count - start);
    const d = det.observe('client', stream.images.subarray(start * IMAGE_SIZE, (start + n) * IMAGE_SIZE), stream.labels.subarray(start, start + n));
    if (d) return d.queries;
  }
  return null;
}

describe('PRADA on query streams labelled by a real victim', () => {
  let victim: Model;
  let attack: QueryStream;
  beforeAll(async () => {
    await initBackend();
    victim = fromLayers((await loadModel(await ensureTestVictim())).model);
    attack = papernotStream(victim, { seedSize: 150, rounds: 1 });
  });

  it('flags a Jacobian-augmentation stream within its first augmentation round', () => {
    expect(attack.starts).toEqual([0, 150]);
    const at = flaggedAt(attack);
    expect(at).not.toBeNull();
    expect(at!).toBeGreaterThan(150); // the natural seed set alone is not flagged
    expect(at!).toBeLessThanOrEqual(300);
  });

  it('flags it within that round even after the campaign labelled 1,000 natural images with the same key', () => {
    // The campaign's evaluation set: 1,000 test images disjoint from the seed set, labelled first.
    const before = naturalStream(victim, 1000, adversarySplit(1, 150, 1000).evalSet);
    const images = new Float32Array((1000 + attack.count) * IMAGE_SIZE);
    images.set(before.images);
    images.set(attack.images, 1000 * IMAGE_SIZE);
    const labels = Int32Array.from([...before.labels, ...attack.labels]);
    const at = flaggedAt({ images, labels, count: labels.length, starts: [0, 1000] }, 1000);
    expect(at).not.toBeNull();
    expect(at!).toBeGreaterThan(1150);
    expect(at!).toBeLessThanOrEqual(1300);
  });

  it('does not flag natural test images (3 clients × 2,000, each its own order)', () => {
    const test = loadMnist('test');
    for (let c = 0; c < 3; c++) {
      const stream = naturalStream(victim, 2000, permutation(test.count, createRng(1000 + c)));
      expect(flaggedAt(stream, 250)).toBeNull();
    }
  });
});
