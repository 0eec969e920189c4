import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { measureBoundary } from '../adversary/campaign/boundary.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import type { LabelOracle, QueryCounts } from '../adversary/oracle/oracle.js';
import { boundaryMapPng, chooseRows, pickEpsilons } from '../adversary/report/pictures.js';
import { writeBoundaryMaps, writeImageGrids } from '../adversary/report/run-pictures.js';
import { memoryRunStore } from '../adversary/run/store.js';
import { CLASS_COLOURS } from '../adversary/report/raster.js';
import { flipDistances, orthogonalSignDirection, planeGrid } from '../shared/boundary.js';
import type { Labeler } from '../shared/labeler.js';
import { boundaryGap, distanceSummary, quantile } from '../shared/statistics.js';
import { IMAGE_SIZE, quantise } from '../shared/datasets/index.js';
import { predictLabels, type Model } from '../shared/model/model.js';
import { createRng } from '../shared/random.js';

const P = IMAGE_SIZE;

/** Random 8-bit images, as MNIST images are. */
function randomImages(count: number, seed: number, max = 255): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: count * P }, () => Math.floor(rng() * (max + 1)) / 255);
}

/** label = 1 when the mean pixel exceeds t, else 0; counts its batched calls. */
function meanThreshold(t: number): { label: Labeler; calls: number[] } {
  const calls: number[] = [];
  const label: Labeler = async (images, count) => {
    calls.push(count);
    return Int32Array.from({ length: count }, (_, i) => {
      let s = 0;
      for (let p = 0; p < P; p++) s += images[i * P + p];
      return s / P > t ? 1 : 0;
    });
  };
  return { label, calls };
}

/** The exact answer by linear scan over every 8-bit step, probing as flipDistances does. */
async function scan(x: Float32Array, d: Float32Array, i: number, label: Labeler, kMax = 255): Promise<number | null> {
  const ref = (await label(x.slice(i * P, (i + 1) * P), 1))[0];
  for (let k = 1; k <= kMax; k++) {
    const probe = Float32Array.from({ length: P }, (_, p) => x[i * P + p] + (k / 255) * d[i * P + p]);
    if ((await label(quantise(probe), 1))[0] !== ref) return k / 255;
  }
  return null;
}

describe('flipDistances', () => {
  const n = 12;
  // Dark images pushed up on most pixels: the mean rises monotonically along the ray.
  const x = randomImages(n, 1, 100);
  const rng = createRng(2);
  const d = Float32Array.from({ length: n * P }, () => (rng() < 0.9 ? 1 : 0));

  it('finds the exact flip step of a known threshold: ≤ 21 batched calls scanning first, ≤ 9 bisecting', async () => {
    for (const [t, search] of [[0.25, 'first'], [0.5, 'first'], [0.77, 'first'], [0.25, 'bisect'], [0.5, 'bisect'], [0.77, 'bisect']] as const) {
      const { label } = meanThreshold(t);
      const reference = new Int32Array(n); // every image's mean is below 0.25 at ε = 0
      const counted = meanThreshold(t);
      const got = await flipDistances(x, d, n, counted.label, { reference, search });
      expect(counted.calls.length).toBeLessThanOrEqual(search === 'first' ? 21 : 9);
      expect(got.labelled).toBeLessThanOrEqual(n * (search === 'first' ? 20 : 9));
      expect(got.calls).toBe(counted.calls.length);
      expect(got.labelled).toBe(counted.calls.reduce((a, b) => a + b, 0));
      for (let i = 0; i < n; i++) {
        const want = await scan(x, d, i, label);
        if (want === null) expect(got.epsilons[i]).toBeNull();
        else expect(got.epsilons[i]).toBeCloseTo(want, 12);
        expect(got.flippedTo[i]).toBe(want === null ? null : 1);
      }
    }
  });

  it('asks for the reference labels itself when none are given, and reports never-flipping images as null', async () => {
    const counted = meanThreshold(2); // a mean never exceeds 2: no image flips
    const got = await flipDistances(x, d, n, counted.label);
    expect(got.epsilons).toEqual(new Array(n).fill(null));
    expect(got.flippedTo).toEqual(new Array(n).fill(null));
    expect(Array.from(got.reference)).toEqual(new Array(n).fill(0));
    expect(counted.calls).toEqual([n, ...new Array(16).fill(n)]); // reference + the 16 coarse steps, no bisection
    const bisect = meanThreshold(2);
    await flipDistances(x, d, n, bisect.label, { search: 'bisect' });
    expect(bisect.calls).toEqual([n, n]); // reference + the check at εmax
  });

  it('finds the first crossing of a label that changes and changes back, which bisection misses', async () => {
    // label 1 only while the mean lies in a band: it flips, then returns before ε = 1.
    const band: Labeler = async (images, count) =>
      Int32Array.from({ length: count }, (_, i) => {
        let s = 0;
        for (let p = 0; p < P; p++) s += images[i * P + p];
        return s / P > 0.35 && s / P < 0.6 ? 1 : 0;
      });
    const reference = new Int32Array(n);
    const first = await flipDistances(x, d, n, band, { reference });
    const bisect = await flipDistances(x, d, n, band, { reference, search: 'bisect' });
    const exact = meanThreshold(0.35).label;
    for (let i = 0; i < n; i++) {
      expect(first.epsilons[i]).toBeCloseTo((await scan(x, d, i, exact)) as number, 12);
      expect(bisect.epsilons[i]).toBeNull(); // the label at ε = 1 is the reference again
    }
  });

  it('honours epsilonMax and handles empty input', async () => {
    const counted = meanThreshold(0.5);
    const got = await flipDistances(x, d, n, counted.label, { epsilonMax: 0.3, reference: new Int32Array(n) });
    for (let i = 0; i < n; i++) {
      const want = await scan(x, d, i, meanThreshold(0.5).label, 76);
      expect(got.epsilons[i]).toBe(want);
    }
    const empty = await flipDistances(new Float32Array(0), new Float32Array(0), 0, counted.label);
    expect(empty.calls).toBe(0);
    await expect(flipDistances(x, d, n - 1, counted.label)).rejects.toThrow(/not a whole number of values for each of 11 images/);
  });
});

describe('planeGrid', () => {
  const x = randomImages(1, 3);
  const rng = createRng(4);
  const d1 = Float32Array.from({ length: P }, () => [-1, 0, 1, 1, -1][Math.floor(rng() * 5)]);

  it('draws a sign direction exactly orthogonal to d1, repeatably', () => {
    for (const seed of [1, 2, 3, 4]) {
      const d2 = orthogonalSignDirection(d1, createRng(seed));
      expect(d2.every((v) => v === -1 || v === 0 || v === 1)).toBe(true);
      expect(d2.filter((v) => v === 0).length).toBeLessThanOrEqual(1);
      expect(d1.reduce((s, v, p) => s + v * d2[p], 0)).toBe(0);
      expect(orthogonalSignDirection(d1, createRng(seed))).toEqual(d2);
    }
  });

  it('lays out size² quantised in-range images with the original at the centre', () => {
    const g = planeGrid(x, d1, { size: 5, extent: 0.5, rng: createRng(9) });
    expect(g.points.length).toBe(25 * P);
    expect(g.coords).toEqual([-0.5, -0.25, 0, 0.25, 0.5]);
    expect(g.points.every((v) => v >= 0 && v <= 1 && Math.abs(v * 255 - Math.round(v * 255)) < 1e-4)).toBe(true);
    expect(g.points.slice(12 * P, 13 * P)).toEqual(quantise(x));
    // Row 0, column 0 is a = −0.5 (left), b = +0.5 (top).
    const corner = quantise(Float32Array.from({ length: P }, (_, p) => x[p] - 0.5 * d1[p] + 0.5 * g.d2[p]));
    expect(g.points.slice(0, P)).toEqual(corner);
  });
});

describe('boundary statistics', () => {
  it('quantiles interpolate linearly', () => {
    expect(quantile([4, 1, 3, 2], 0.25)).toBeCloseTo(1.75);
    expect(quantile([], 0.5)).toBeNull();
  });

  it('compares two distance lists, treating a missing flip as infinitely far', () => {
    const sub = [0.1, 0.2, null, 0.4, null];
    const vic = [0.2, 0.1, 0.3, null, null];
    const g = boundaryGap(sub, vic);
    expect(g.compared).toBe(4);
    expect(g.victimNearer).toBe(0.5);
    expect(g.victimFarther).toBe(0.5);
    expect(g.equal).toBe(0);
    expect(g.bothFlipped).toBe(2);
    expect(g.pearson).toBeCloseTo(-1);
    expect(g.medianGap).toBeCloseTo(0);
    expect(distanceSummary(sub)).toMatchObject({ images: 5, flipped: 3, flipRate: 0.6, min: 0.1, median: 0.2, max: 0.4 });
    expect(boundaryGap([null], [null]).victimNearer).toBeNull();
  });
});

describe('pictures and the boundary run', () => {
  const store = memoryRunStore('boundary');
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('draws a decodable boundary map of the documented size with class colours in the panels', () => {
    const size = 33;
    const labels = Array.from({ length: size * size }, (_, i) => i % 10);
    const drawn = boundaryMapPng({
      image: randomImages(1, 5), shape: [28, 28, 1], classes: 10, index: 0, trueLabel: 3, substituteLabel: 3, victimLabel: 3,
      size, extent: 0.5, substitute: labels, victim: labels.map((l) => (l + 1) % 10), agreement: 0, queries: size * size,
    });
    const png = PNG.sync.read(Buffer.from(drawn));
    expect([png.width, png.height]).toEqual([734, 297]);
    // Top-left cell of the substitute panel (x = 10 + 84 + 12, y = 30) holds label 0's colour.
    const o = (31 * png.width + 107) * 4;
    expect([png.data[o], png.data[o + 1], png.data[o + 2]]).toEqual([...CLASS_COLOURS[0]]);
  });

  it('writes untargeted and targeted image grids', () => {
    const n = 20;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
    const epsilons = [0.05, 0.1, 0.2, 0.3, 0.5];
    const advs = epsilons.map((_, k) => randomImages(n, 10 + k));
    const victimLabels = epsilons.map((_, k) => labels.map((l) => (l + k) % 10));
    const paths = writeImageGrids(store, {
      evalSet: { images: randomImages(n, 6), pixels: new Uint8Array(n * P), labels, count: n, shape: [28, 28, 1] },
      classes: 10,
      outcome: {
        points: (['untargeted', 'targeted'] as const).flatMap((mode) => epsilons.map((epsilon) => ({
          mode, epsilon, misclassificationRate: null, transferRate: null, targetedSuccessRate: null,
          craftModelSuccessRate: null, measurementQueries: n,
        }))),
        victimLabels: { untargeted: victimLabels, targeted: victimLabels },
        adversarial: { untargeted: advs, targeted: advs },
        craftSeconds: 0,
        measureSeconds: 0,
      },
      targets: labels.map((l) => (l + 2) % 10),
    });
    expect(paths).toEqual(['images/grid-untargeted.png', 'images/grid-targeted.png']);
    for (const p of paths) {
      const png = PNG.sync.read(Buffer.from(store.read(p)!));
      expect([png.width, png.height]).toEqual([444, 1233]);
    }
    expect(pickEpsilons(epsilons, [0.1, 0.2, 0.3])).toEqual([1, 2, 3]);
    expect(chooseRows(Int32Array.from([1, 1, 0, 2]), 3, () => true)).toEqual([2, 0, 3]);
  });

  it('measures distances and maps through a counting oracle', async () => {
    // Two linear "models" that share most of their weights: related but not identical boundaries.
    const w = tf.randomNormal([P, 10], 0, 0.1, 'float32', 11);
    const w2 = tf.add(w, tf.randomNormal([P, 10], 0, 0.03, 'float32', 12));
    const linear = (m: tf.Tensor): Model => ({ bounds: [0, 1], inputShape: [28, 28, 1], logits: (x) => tf.matMul(x.reshape([x.shape[0], P]), m) as tf.Tensor2D });
    const substitute = linear(w);
    const victimModel = linear(w2);
    const counts: QueryCounts = { attack: 0, measurement: 0, cached: 0 };
    const oracle: LabelOracle = {
      info: async () => ({ dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, inputRange: [0, 1], maxBatch: 256, output: 'label' }),
      label: async (images, count, purpose) => {
        counts[purpose] += count;
        const t = tf.tensor4d(images, [count, 28, 28, 1]);
        const labels = predictLabels(victimModel, t);
        t.dispose();
        return labels;
      },
      counts: () => ({ ...counts }),
      close: async () => undefined,
    };
    const n = 16;
    const images = randomImages(n, 7);
    const evalSet = { images, pixels: new Uint8Array(n * P), labels: Int32Array.from({ length: n }, (_, i) => i % 10), count: n, shape: [28, 28, 1] as const };
    const x = tf.tensor4d(images, [n, 28, 28, 1]);
    const cleanVictim = predictLabels(victimModel, x);
    const substituteClean = predictLabels(substitute, x);
    const config = resolveConfig({ boundary: { images: 10, maps: 2, grid: 9, extent: 0.5, rays: { images: 4, queries: 50 } } });
    const logs: string[] = [];
    const r = await measureBoundary({ config, substitute, evalSet, classNames: Array.from({ length: 10 }, (_, i) => String(i)), cleanVictim, substituteClean, oracle, log: (l) => logs.push(l) });
    expect(r.images).toBe(10);
    expect(r.substituteDistances).toHaveLength(10);
    expect(r.queries.distances + r.queries.maps + (r.queries.nearest ?? 0)).toBe(counts.measurement);
    expect(r.queries.maps).toBe(2 * 81);
    expect(r.queries.distances).toBeLessThanOrEqual(10 * 20); // first flip: ≤ 16 scan + 4 bisection probes each
    // Each model's own nearest boundary by RayS on the first 4 images, ≤ 50 victim queries each.
    expect(r.nearest?.victim).toHaveLength(4);
    expect(r.queries.nearest).toBeGreaterThan(0);
    expect(r.queries.nearest).toBeLessThanOrEqual(4 * 50);
    expect(r.nearest!.adbd.victim).toHaveLength(10);
    // Measuring draws nothing; the report step files each map's picture in the run store.
    const run = memoryRunStore('measured');
    const drawn = writeBoundaryMaps(run, r, evalSet, 10);
    expect(run.files()).toEqual(['images/boundary-map-1.png', 'images/boundary-map-2.png']);
    expect(drawn.maps.map((m) => m.image)).toEqual(['images/boundary-map-1.png', 'images/boundary-map-2.png']);
    expect(drawn.maps.map((m) => m.caption)).toEqual(r.maps.map((m) => m.caption));
    for (const m of drawn.maps) expect(PNG.sync.read(Buffer.from(run.read(m.image)!)).width).toBeGreaterThan(0);
    expect(r.maps[0].victimLabels).toHaveLength(81);
    expect(r.stats.substitute.images).toBe(10);
    expect(logs.length).toBeGreaterThanOrEqual(3);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    tf.dispose([w, w2, x]);
  });
});
