import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { REDIS_SERVER, haveRedis } from '../scripts/redis-server.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import { JournalReader, JournalWriter } from '../victim/detect/journal.js';
import { detectorSet } from '../victim/detect/detectors.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { detectorNamespace } from '../victim/detect/shared-state.js';
import { detectorRedis } from './detector-redis.js';
import { signAugmentedStream } from './extraction-stream.js';

/**
 * Compacting the detectors' shared journal: a snapshot of a client's state, loaded by another
 * detector, gives the same summaries and the same future detections as having observed every query;
 * and on a real Redis, replicas streaming thousands of images through one client keep that client's
 * keys under a bound set by the detectors' own limits, losing no request.
 */
// Small limits, so class sets fill, the W window and Blacklight's ring wrap within a few hundred images.
const PRADA = { classCap: 20, window: 40, minDistances: 20 };
const BLACKLIGHT = { history: 16, minMatches: 2 };
const fresh = () => detectorSet({ prada: new PradaDetector(PRADA), blacklight: new BlacklightDetector(BLACKLIGHT) });

/** The Papernot-like stream (PRADA flags it) then near-duplicates of one image (Blacklight matches them). */
function attackStream(): { images: Float32Array; labels: Int32Array; count: number } {
  const s = signAugmentedStream();
  const test = loadMnist('test');
  const count = s.count + 10;
  const pixels = new Uint8Array(count * IMAGE_SIZE);
  pixels.set(s.pixels);
  const labels = new Int32Array(count);
  labels.set(s.labels);
  for (let i = 0; i < 10; i++) {
    pixels.set(test.pixels.subarray(500 * IMAGE_SIZE, 501 * IMAGE_SIZE), (s.count + i) * IMAGE_SIZE);
    pixels[(s.count + i) * IMAGE_SIZE + 300 + i] ^= 1;
    labels[s.count + i] = test.labels[500];
  }
  return { images: Float32Array.from(pixels, (v) => v / 255), labels, count };
}

describe('detector snapshots', () => {
  const stream = attackStream();
  const request = (from: number, to: number) => [stream.images.subarray(from * IMAGE_SIZE, to * IMAGE_SIZE), stream.labels.subarray(from, to)] as const;

  it('restored at any query, a snapshot continues exactly as the detector that wrote it (both detectors, flags included)', () => {
    const reference = fresh();
    const flags = [];
    for (let i = 0; i < stream.count; i++) {
      const d = reference.observe('c', ...request(i, i + 1));
      if (d) flags.push(d.by);
    }
    expect(flags).toEqual(['prada']); // PRADA flags the client first; Blacklight flags it in its own state later
    expect(reference.summaries().find((s) => s.detector === 'blacklight')?.flagged).toBe(true);

    fc.assert(
      fc.property(fc.integer({ min: 0, max: stream.count }), fc.integer({ min: 1, max: 40 }), (split, batch) => {
        const whole = fresh();
        const writer = fresh();
        const found: { whole: unknown[]; parts: unknown[] } = { whole: [], parts: [] };
        const requests = (from: number, to: number) => Array.from({ length: Math.ceil((to - from) / batch) }, (_, k) => [from + k * batch, Math.min(to, from + (k + 1) * batch)] as const);
        for (const [a, b] of requests(0, split)) {
          found.whole.push(whole.observe('c', ...request(a, b)));
          found.parts.push(writer.observe('c', ...request(a, b)));
        }
        const w = new JournalWriter();
        writer.snapshot('c', w);
        const snapshot = Buffer.from(w.finish());
        const reader = fresh();
        reader.restore('c', new JournalReader(snapshot));
        expect(reader.summaries()).toEqual(writer.summaries());
        const again = new JournalWriter();
        reader.snapshot('c', again);
        expect(again.finish().equals(snapshot)).toBe(true);
        for (const [a, b] of requests(split, stream.count)) {
          found.whole.push(whole.observe('c', ...request(a, b)));
          found.parts.push(reader.observe('c', ...request(a, b)));
        }
        expect(found.parts).toEqual(found.whole);
        expect(reader.summaries()).toEqual(whole.summaries());
      }),
      { seed: 7, numRuns: 15 },
    );
  });
});

describe.skipIf(!haveRedis)('a compacted shared journal on a real Redis', () => {
  const { connect, replica: sharing } = detectorRedis();
  const replica = () => sharing(fresh(), { compactBytes: 4096 });
  const namespace = detectorNamespace(fresh());

  it(`3,000 natural images from two replicas at once: the client's keys stay bounded, and nothing is lost (${REDIS_SERVER})`, async () => {
    const test = loadMnist('test');
    const BATCH = 30;
    const TOTAL = 3000;
    // What a snapshot can hold at these limits: PRADA's full class sets (and a few KB of window and
    // counters), Blacklight's ring of fingerprints; the keys may hold 1.5 of it, plus one request's journal.
    const snapshotBound = 10 * PRADA.classCap * IMAGE_SIZE + BLACKLIGHT.history * 4 * 51 + 16_384;
    const bound = 1.5 * snapshotBound + BATCH * (IMAGE_SIZE + 13 + 208) + 8192;
    const replicas = [replica(), replica()];
    const db = connect();
    const usage = async () => {
      let bytes = 0;
      for (const k of await db.keys(`tl:det*:${namespace}:c`)) bytes += Number(await db.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
      return bytes;
    };
    const seen: number[] = [];
    for (let from = 0; from < TOTAL; from += 10 * BATCH) {
      // Ten requests at a time, spread over both replicas: they race for the client's lock (and to compact).
      await Promise.all(
        Array.from({ length: 10 }, (_, k) => {
          const a = from + k * BATCH;
          const r = replicas[k % 2];
          return r.state.observe(r.detector, 'c', Float32Array.from(test.pixels.subarray(a * IMAGE_SIZE, (a + BATCH) * IMAGE_SIZE), (v) => v / 255), test.labels.subarray(a, a + BATCH));
        }),
      );
      seen.push(await usage());
    }
    // Without compaction the log alone passes the bound (every image journals ≥ 13 bytes, most 200 more).
    expect(Math.max(...seen)).toBeLessThan(bound);
    // A replica that saw nothing catches up from the snapshot and what follows it, to where both replicas are.
    const late = replica();
    for (const r of [...replicas, late]) await r.state.observe(r.detector, 'c', new Float32Array(0), new Int32Array(0));
    const prada = late.detector.summaries().find((s) => s.detector === 'prada');
    expect(prada?.queries).toBe(TOTAL); // no request lost to a compaction racing an append
    expect(late.detector.summaries().find((s) => s.detector === 'blacklight')?.queries).toBe(TOTAL);
    expect(replicas[0].detector.summaries()).toEqual(late.detector.summaries());
    expect(replicas[1].detector.summaries()).toEqual(late.detector.summaries());
  });
});
