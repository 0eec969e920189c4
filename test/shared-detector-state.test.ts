import { describe, expect, it } from 'vitest';
import { IMAGE_SIZE } from '../shared/datasets/index.js';
import { REDIS_SERVER, haveRedis } from '../scripts/redis-server.js';
import { BlacklightDetector } from '../victim/detect/blacklight.js';
import { JournalReader, JournalWriter } from '../victim/detect/journal.js';
import { detectorSet, type QueryDetector } from '../victim/detect/detectors.js';
import { PradaDetector } from '../victim/detect/prada.js';
import { detectorNamespace } from '../victim/detect/shared-state.js';
import { detectorRedis } from './detector-redis.js';
import { signAugmentedStream } from './extraction-stream.js';

/**
 * Detector state shared by replicas: a request journalled on one detector and replayed on another
 * leaves both exactly where one detector observing every request would be; and two replicas'
 * SharedDetectorState on a real Redis, observing one client's requests at the same time, lose no
 * request and end in the same state.
 */
const stream = signAugmentedStream();
const BATCH = 25;
const requests = Array.from({ length: stream.count / BATCH }, (_, k) => ({
  images: Float32Array.from(stream.pixels.subarray(k * BATCH * IMAGE_SIZE, (k + 1) * BATCH * IMAGE_SIZE), (v) => v / 255),
  labels: stream.labels.subarray(k * BATCH, (k + 1) * BATCH),
}));
const fresh = () => detectorSet({ prada: new PradaDetector(), blacklight: new BlacklightDetector() });

describe('detector journals', () => {
  it('two detectors taking turns, each replaying the other’s journals, flag where one detector seeing everything flags', () => {
    const one = fresh();
    const firstOf = (d: QueryDetector) => requests.map((r) => d.observe('c', r.images, r.labels)).find((x) => x !== null);
    const expected = firstOf(one);
    expect(expected?.by).toBe('prada'); // the stream is flagged, by PRADA, after its seed set
    expect(expected!.queries).toBeGreaterThan(150);

    const pair = [fresh(), fresh()];
    const log: Buffer[] = [];
    const applied = [0, 0];
    const found: ReturnType<QueryDetector['observe']>[] = [];
    const catchUp = (i: number) => {
      for (; applied[i] < log.length; applied[i]++) pair[i].replay('c', new JournalReader(log[applied[i]]));
    };
    requests.forEach((r, k) => {
      const i = k % 2;
      catchUp(i);
      const journal = new JournalWriter();
      found.push(pair[i].observe('c', r.images, r.labels, journal));
      log.push(journal.finish());
      applied[i]++;
    });
    expect(found.filter((d) => d !== null)).toEqual([expected]); // the same detection, once
    catchUp(0);
    catchUp(1);
    expect(pair[0].summaries()).toEqual(one.summaries());
    expect(pair[1].summaries()).toEqual(one.summaries());
  });
});

describe.skipIf(!haveRedis)('shared detector state on a real Redis', () => {
  const shared = detectorRedis();
  const replica = () => shared.replica(fresh());

  it(`two replicas observing one client's requests at once: none lost, one detection, the same state (${REDIS_SERVER})`, async () => {
    const replicas = [replica(), replica()];
    const found = await Promise.all(requests.map((r, k) => replicas[k % 2].state.observe(replicas[k % 2].detector, 'c', r.images, r.labels)));
    expect(found.filter((d) => d !== null)).toHaveLength(1); // flagged once, by whichever replica's request crossed δ
    // An empty request makes each catch up on the other's.
    for (const r of replicas) await r.state.observe(r.detector, 'c', new Float32Array(0), new Int32Array(0));
    const namespace = detectorNamespace(replicas[0].detector);
    const log = await shared.connect().lrangeBuffer(`tl:detlog:${namespace}:c`, 0, -1);
    expect(log).toHaveLength(requests.length + 2);
    const fromLog = fresh();
    for (const e of log) fromLog.replay('c', new JournalReader(e));
    expect(replicas[0].detector.summaries()).toEqual(fromLog.summaries());
    expect(replicas[1].detector.summaries()).toEqual(fromLog.summaries());
    expect(fromLog.summaries().find((s) => s.detector === 'prada')?.queries).toBe(stream.count);

    // A lifted block: the client's log starts afresh, and the other replica notices.
    await replicas[0].state.reset('c');
    await replicas[1].state.observe(replicas[1].detector, 'c', requests[0].images, requests[0].labels);
    expect(replicas[1].detector.summaries().find((s) => s.detector === 'prada')?.queries).toBe(BATCH);
  });
});
