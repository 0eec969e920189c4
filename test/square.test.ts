import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { marginLoss, squareAttack, squareP, squareSide, type Scorer } from '../shared/attacks/square.js';
import { createRng } from '../shared/random.js';
import { TransferlabError } from '../shared/errors.js';

/** A seeded linear softmax classifier over any H×W×C: a tiny real model whose scores move with every pixel. */
function linearScorer(pixels: number, classes: number, seed: number): { score: Scorer; top: (x: Float32Array) => number } {
  const rng = createRng(seed);
  const w = Float32Array.from({ length: pixels * classes }, () => rng() * 2 - 1);
  const logits = (x: Float32Array, off: number) => {
    const z = new Float64Array(classes);
    for (let k = 0; k < classes; k++) for (let p = 0; p < pixels; p++) z[k] += x[off + p] * w[p * classes + k];
    return z;
  };
  const score: Scorer = async (images, count) => {
    const out = new Float32Array(count * classes);
    for (let i = 0; i < count; i++) {
      const z = logits(images, i * pixels);
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((v, k) => (out[i * classes + k] = v / sum));
    }
    return out;
  };
  const top = (x: Float32Array) => {
    const z = logits(x, 0);
    return z.indexOf(Math.max(...z));
  };
  return { score, top };
}

/** A scorer that records every row it is asked and answers `answer(row)`. */
function recording(pixels: number, answer: (row: Float32Array) => number[]) {
  const rows: Float32Array[] = [];
  let calls = 0;
  const score: Scorer = async (images, count) => {
    calls++;
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const row = images.slice(i * pixels, (i + 1) * pixels);
      rows.push(row);
      out.push(...answer(row));
    }
    return Float32Array.from(out);
  };
  return { score, rows, calls: () => calls };
}

const eightBit = (n: number, rng: () => number) => Float32Array.from({ length: n }, () => Math.round(rng() * 255) / 255);

describe('Square Attack (L∞)', () => {
  it('every probe and every result stays inside the ε-ball and [0, 1], on any H×W×C, and the queries add up exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          h: fc.integer({ min: 1, max: 6 }),
          w: fc.integer({ min: 1, max: 6 }),
          c: fc.integer({ min: 1, max: 3 }),
          count: fc.integer({ min: 1, max: 4 }),
          // ε in 8-bit steps, as the query attack uses it (fc.double draws mostly 0, 1 and subnormals).
          eps: fc.integer({ min: 0, max: 255 }).map((k) => k / 255),
          budget: fc.integer({ min: 1, max: 25 }),
          seed: fc.integer({ min: 0, max: 1000 }),
        }),
        async ({ h, w, c, count, eps, budget, seed }) => {
          const pixels = h * w * c;
          const rng = createRng(seed);
          const images = eightBit(count * pixels, rng);
          const model = linearScorer(pixels, 3, seed + 1);
          const rows: Float32Array[] = [];
          const score: Scorer = async (batch, n) => {
            for (let i = 0; i < n; i++) rows.push(batch.slice(i * pixels, (i + 1) * pixels));
            return model.score(batch, n);
          };
          // The clean top class: most images are not fooled at once, so the search really runs.
          const labels = Array.from({ length: count }, (_, i) => model.top(images.subarray(i * pixels, (i + 1) * pixels)));
          const r = await squareAttack(images, labels, count, score, { epsilon: eps, shape: [h, w, c], queriesPerImage: budget, seed });
          const inBall = (img: Float32Array, i: number) =>
            img.every((v, p) => v >= 0 && v <= 1 && Math.abs(v - images[i * pixels + p]) <= eps + 1e-6);
          // Each row sent lies in the ball of one of the images (exactly its own when count is 1).
          for (const row of rows) expect(Array.from({ length: count }, (_, i) => inBall(row, i)).some(Boolean)).toBe(true);
          for (let i = 0; i < count; i++) {
            expect(inBall(r.images.subarray(i * pixels, (i + 1) * pixels), i)).toBe(true);
            expect(r.queries[i]).toBeGreaterThanOrEqual(1);
            expect(r.queries[i]).toBeLessThanOrEqual(budget);
          }
          expect(rows.length).toBe(r.asked);
          expect(r.queries.reduce((a, b) => a + b, 0)).toBe(r.asked);
        },
      ),
      { numRuns: 60, seed: 24 },
    );
  });

  it('an image never fooled spends exactly its budget, one scorer call per iteration; one fooled at the start asks once', async () => {
    const pixels = 4 * 5;
    // Image 0's true class 0 always wins; image 1's label is 1, which never wins: fooled by its first query.
    const rec = recording(pixels, () => [0.9, 0.05, 0.05]);
    const images = eightBit(2 * pixels, createRng(3));
    const r = await squareAttack(images, [0, 1], 2, rec.score, { epsilon: 0.3, shape: [4, 5, 1], queriesPerImage: 37 });
    expect(Array.from(r.queries)).toEqual([37, 1]);
    expect(rec.rows.length).toBe(38);
    expect(r.asked).toBe(38);
    expect(rec.calls()).toBe(37);
    expect(r.margins[0]).toBeCloseTo(0.85, 6);
    expect(r.margins[1]).toBeLessThan(0);
  });

  it('fools a tiny linear softmax model at ε 0.3 within a few queries', async () => {
    const [h, w, c] = [8, 8, 1];
    const pixels = h * w * c;
    const model = linearScorer(pixels, 4, 11);
    const rng = createRng(5);
    const count = 20;
    const images = eightBit(count * pixels, rng);
    const clean = Array.from({ length: count }, (_, i) => model.top(images.subarray(i * pixels, (i + 1) * pixels)));
    const r = await squareAttack(images, clean, count, model.score, { epsilon: 0.3, shape: [h, w, c], queriesPerImage: 200, seed: 1 });
    const fooled = clean.filter((y, i) => model.top(r.images.subarray(i * pixels, (i + 1) * pixels)) !== y).length;
    expect(fooled).toBe(count);
    expect([...r.margins].every((m) => m < 0)).toBe(true);
    const sorted = [...r.queries].sort((a, b) => a - b);
    expect(sorted[count / 2]).toBeLessThanOrEqual(20);
  });

  it("an image's probes depend only on its own answers (a rerun over cached answers asks the same ones)", async () => {
    const pixels = 6 * 6;
    const model = linearScorer(pixels, 3, 2);
    const images = eightBit(3 * pixels, createRng(9));
    const probesOf = async (idx: number[]) => {
      const rows: Float32Array[] = [];
      const score: Scorer = async (batch, n) => {
        for (let i = 0; i < n; i++) rows.push(batch.slice(i * pixels, (i + 1) * pixels));
        return model.score(batch, n);
      };
      const sub = new Float32Array(idx.length * pixels);
      idx.forEach((k, j) => sub.set(images.subarray(k * pixels, (k + 1) * pixels), j * pixels));
      await squareAttack(sub, idx.map(() => 0), idx.length, score, { epsilon: 0.1, shape: [6, 6, 1], queriesPerImage: 15, seed: 4 });
      return rows;
    };
    const both = await probesOf([0, 1]);
    const again = await probesOf([0, 1]);
    expect(again.map((r) => [...r])).toEqual(both.map((r) => [...r]));
  });

  it("the p schedule halves at the paper's fractions of the budget; the window fits any H×W", () => {
    expect(squareP(0.05, 0, 10_000)).toBe(0.05);
    expect(squareP(0.05, 11, 10_000)).toBe(0.025);
    expect(squareP(0.05, 51, 10_000)).toBe(0.0125);
    expect(squareP(0.8, 999, 1000)).toBeCloseTo(0.8 / 512, 12);
    expect(squareP(0.8, 1, 1000)).toBe(0.8); // 1/1000 of the budget = 10 on the 10,000 scale: not past the first step
    expect(squareP(0.8, 2, 1000)).toBe(0.4);
    expect(squareSide(0.05, 28, 28)).toBe(6);
    expect(squareSide(1, 3, 40)).toBe(2);
    expect(squareSide(0.5, 1, 1)).toBe(1);
  });

  it('the margin reads top-k answers: a missing true class is fooled, missing others are bounded by the mass left', () => {
    const f = (a: number[], y: number) => marginLoss(Float32Array.from(a), y);
    expect(f([0.7, 0.2, 0.1], 0)).toBeCloseTo(0.5, 6);
    expect(f([0.2, 0.7, 0.1], 0)).toBeCloseTo(-0.5, 6);
    expect(f([NaN, 0.8, NaN], 0)).toBe(-1);
    // top-1: the best other is at most 1 − 0.7.
    expect(f([0.7, NaN, NaN], 0)).toBeCloseTo(0.4, 6);
    // top-1 at 0.4: another class may hold up to 0.4 as well (never below zero: still the top).
    expect(f([0.4, NaN, NaN], 0)).toBeCloseTo(0, 6);
    // top-2 where the other given class leads.
    expect(f([0.3, 0.6, NaN], 0)).toBeCloseTo(-0.3, 6);
  });

  it('a row with no score at all (a refused probe) is counted as refused, never as fooled', async () => {
    const pixels = 9;
    // Every call carries both images (neither is ever fooled): image 0's rows are answered, image 1's refused.
    let row = 0;
    const rec = recording(pixels, () => (row++ % 2 === 1 ? [NaN, NaN] : [0.9, 0.1]));
    const r = await squareAttack(new Float32Array(2 * pixels).fill(0.5), [0, 0], 2, rec.score, { epsilon: 0.1, shape: [3, 3, 1], queriesPerImage: 6 });
    expect(Array.from(r.queries)).toEqual([6, 6]);
    expect(Array.from(r.refused)).toEqual([0, 6]);
    expect(r.firstRefused).toEqual([null, 1]);
    expect(r.margins[0]).toBeCloseTo(0.8, 6);
    expect(r.margins[1]).toBe(Infinity);
  });

  it('a stop the caller names (a spent budget) ends the attack with what it found; any other error is thrown', async () => {
    const pixels = 9;
    let calls = 0;
    const score: Scorer = async (_, n) => {
      if (++calls === 4) throw new TransferlabError('budget_exhausted', 'spent', 429);
      return Float32Array.from({ length: n * 2 }, (_, k) => (k % 2 === 0 ? 0.9 : 0.1));
    };
    const r = await squareAttack(new Float32Array(2 * pixels).fill(0.5), [0, 0], 2, score, { epsilon: 0.1, shape: [3, 3, 1], queriesPerImage: 50, stopOn: (e) => e instanceof TransferlabError && e.code === 'budget_exhausted' });
    expect(r.stopped).toBeInstanceOf(TransferlabError);
    expect(Array.from(r.queries)).toEqual([3, 3]); // the start and two iterations were answered; the fourth call was refused
    expect(r.asked).toBe(6);
    calls = 0;
    await expect(squareAttack(new Float32Array(pixels), [0], 1, score, { epsilon: 0.1, shape: [3, 3, 1], queriesPerImage: 50 })).rejects.toThrow(/spent/);
  });

  it('refuses input it cannot attack with a clear error', async () => {
    const score: Scorer = async (_, n) => new Float32Array(n * 2);
    await expect(squareAttack(new Float32Array(5), [0], 1, score, { epsilon: 0.3, shape: [2, 2, 1], queriesPerImage: 5 })).rejects.toThrow(/do not hold 1 images/);
    await expect(squareAttack(new Float32Array(4), [0], 1, score, { epsilon: 0.3, shape: [2, 2, 1], queriesPerImage: 0 })).rejects.toThrow(/queries per image/);
    await expect(squareAttack(new Float32Array(4), [0], 1, score, { epsilon: 1.5, shape: [2, 2, 1], queriesPerImage: 3 })).rejects.toThrow(/ε must be/);
  });
});
