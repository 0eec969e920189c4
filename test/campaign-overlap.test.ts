import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { measureBoundary } from '../adversary/campaign/boundary.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { sweep, sweepSettings } from '../adversary/campaign/transfer.js';
import type { LabelOracle, QueryCounts } from '../adversary/oracle/oracle.js';
import { IMAGE_SIZE } from '../shared/datasets/index.js';
import { predictLabels, type Model } from '../shared/model/model.js';
import { createRng } from '../shared/random.js';

/**
 * The campaign computes while the victim answers (adversary/campaign/overlap.ts): the next ε's images and
 * the substitute's labels during the sweep, the substitute's own searches during the boundary measures.
 * Against a victim that answers late, as one behind HTTP does, it must ask exactly the same batches in
 * the same order, one at a time, and find exactly what it finds against one that answers at once — and
 * the local work must really run while a victim call is in flight.
 */
const P = IMAGE_SIZE;
const w = tf.randomNormal([P, 10], 0, 0.1, 'float32', 11);
const w2 = tf.add(w, tf.randomNormal([P, 10], 0, 0.03, 'float32', 12));
afterAll(() => tf.dispose([w, w2]));

/** What the victim was asked and when the substitute computed, in order. */
type Event = { kind: 'asked'; batch: string } | { kind: 'answered' } | { kind: 'substitute'; inFlight: number };

function watched(weights: tf.Tensor, events: Event[], inFlight: () => number): Model {
  return {
    bounds: [0, 1],
    inputShape: [28, 28, 1],
    logits: (x) => {
      events.push({ kind: 'substitute', inFlight: inFlight() });
      return tf.matMul(x.reshape([x.shape[0], P]), weights) as tf.Tensor2D;
    },
  };
}

/** The victim, answering at once or after a delay (a round trip to another process). */
function victimOf(events: Event[], delayMs: number) {
  const model: Model = { bounds: [0, 1], inputShape: [28, 28, 1], logits: (x) => tf.matMul(x.reshape([x.shape[0], P]), w2) as tf.Tensor2D };
  let flying = 0;
  let most = 0;
  const counts: QueryCounts = { attack: 0, measurement: 0, cached: 0 };
  const label = async (images: Float32Array, count: number): Promise<Int32Array> => {
    events.push({ kind: 'asked', batch: createHash('sha256').update(new Uint8Array(images.buffer, images.byteOffset, count * P * 4)).digest('hex') });
    flying++;
    most = Math.max(most, flying);
    const x = tf.tensor4d(images.subarray(0, count * P), [count, 28, 28, 1]);
    const labels = predictLabels(model, x);
    x.dispose();
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    flying--;
    events.push({ kind: 'answered' });
    return labels;
  };
  const oracle: LabelOracle = {
    info: async () => ({ dataset: 'mnist', inputShape: [28, 28, 1], classes: 10, inputRange: [0, 1], maxBatch: 256, output: 'label' }),
    label: async (images, count, purpose) => {
      counts[purpose] += count;
      return label(images, count);
    },
    counts: () => ({ ...counts }),
    close: async () => undefined,
  };
  return { label, oracle, model, inFlight: () => flying, mostInFlight: () => most };
}

function randomImages(count: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: count * P }, () => Math.floor(rng() * 256) / 255);
}

const asked = (events: Event[]) => events.flatMap((e) => (e.kind === 'asked' ? [e.batch] : []));
const whileWaiting = (events: Event[]) => events.filter((e) => e.kind === 'substitute' && e.inFlight > 0).length;

describe('local work while the victim answers', () => {
  const n = 24;
  const images = randomImages(n, 3);
  const truth = Int32Array.from({ length: n }, (_, i) => i % 10);

  async function sweepAgainst(delayMs: number) {
    const events: Event[] = [];
    const victim = victimOf(events, delayMs);
    const substitute = watched(w, events, victim.inFlight);
    const x = tf.tensor4d(images, [n, 28, 28, 1]);
    const cleanVictim = predictLabels(victim.model, x);
    const craftLabels = predictLabels(substitute, x);
    x.dispose();
    const settings = sweepSettings(resolveConfig({ epsilons: [0.05, 0.2, 0.4], tiKernel: 0 }));
    const outcome = await sweep(substitute, { images, truth, craftLabels, targets: truth.map((l) => (l + 3) % 10), cleanVictim }, settings, victim.label);
    return { outcome, events, victim };
  }

  it('sweep: the same batches, one at a time, the same figures; the next point is crafted while the victim labels', async () => {
    const atOnce = await sweepAgainst(0);
    const late = await sweepAgainst(25);
    expect(asked(late.events)).toEqual(asked(atOnce.events));
    expect(asked(late.events)).toHaveLength(6); // 2 modes × 3 ε
    expect(late.victim.mostInFlight()).toBe(1);
    const strip = (o: typeof atOnce.outcome) => ({ points: o.points, victimLabels: o.victimLabels, adversarial: o.adversarial, partial: o.partial });
    expect(strip(late.outcome)).toEqual(strip(atOnce.outcome));
    // Each point's own labels by the substitute and the next point's gradient, all during the victim's answers.
    expect(whileWaiting(late.events)).toBeGreaterThanOrEqual(6);
    expect(late.outcome.measureSeconds).toBeGreaterThan(0);
  });

  async function boundaryAgainst(delayMs: number) {
    const events: Event[] = [];
    const victim = victimOf(events, delayMs);
    const substitute = watched(w, events, victim.inFlight);
    const m = 16;
    const evalImages = randomImages(m, 7);
    const evalSet = { images: evalImages, pixels: new Uint8Array(m * P), labels: Int32Array.from({ length: m }, (_, i) => i % 10), count: m, shape: [28, 28, 1] as const };
    const x = tf.tensor4d(evalImages, [m, 28, 28, 1]);
    const cleanVictim = predictLabels(victim.model, x);
    const substituteClean = predictLabels(substitute, x);
    x.dispose();
    const config = resolveConfig({ boundary: { images: 10, maps: 2, grid: 9, extent: 0.5, rays: { images: 4, queries: 50 } } });
    const r = await measureBoundary({ config, substitute, evalSet, classNames: Array.from({ length: 10 }, (_, i) => String(i)), cleanVictim, substituteClean, oracle: victim.oracle, log: () => undefined });
    return { r, events, victim };
  }

  it('boundary: the substitute searches its first flips and RayS rounds and labels the maps while the victim answers, with the same queries and figures', async () => {
    const atOnce = await boundaryAgainst(0);
    const late = await boundaryAgainst(4);
    expect(asked(late.events)).toEqual(asked(atOnce.events));
    expect(late.victim.mostInFlight()).toBe(1);
    expect(late.r).toEqual(atOnce.r);
    expect(late.r.nearest?.victim).toHaveLength(4);
    expect(late.r.queries.maps).toBe(2 * 81);
    // First flips, both maps and RayS's rounds in step (boundary-nearest.ts): of 64 substitute calls, all but
    // the few before the first victim call and after the victim's searches end came while one was in flight.
    expect(whileWaiting(late.events)).toBeGreaterThanOrEqual(40);
  });
});
