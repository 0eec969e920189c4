/**
 * Figures for the query-attack detectors, not part of `npm test`. The detectors see exactly the
 * 8-bit images a client sends, so the streams are fed to them in-process, in the requests the
 * client would send, with the victim model answering (the same labels as over HTTP):
 * - false positives: `--clients` benign keys × `--images` natural test images (each key its own
 *   shuffle of the test set, requests of 100);
 * - RayS and HopSkipJump (L∞): one key per attacked image (`--attacks` images), the attack's
 *   first query being the image's clean label, then its probes one per request; the query at
 *   which each detector flagged the key;
 * - the same attacks batched: one key attacking `--batched` images at once (lock-step rounds);
 * - the Papernot campaign's stream (seed set 150, two augmentation rounds) under one key.
 *
 *   npx tsx scripts/blacklight-measure.ts [--model models/victim] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { runQueryAttack, type QueryAttackName } from '../adversary/query/attack.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { median } from '../shared/statistics.js';
import { adversarySplit, IMAGE_SIZE, loadMnist, subset } from '../shared/datasets/index.js';
import { fromLayers, labelImages, type Model } from '../shared/model/model.js';
import { loadModel } from '../shared/model/model-io.js';
import { createRng, permutation } from '../shared/random.js';
import { papernotStream } from './papernot-stream.js';
import { BlacklightDetector, type BlacklightOptions } from '../victim/detect/blacklight.js';
import { PradaDetector } from '../victim/detect/prada.js';

interface Flags {
  blacklight: number | null;
  prada: number | null;
}

/** Feeds a key's requests to both detectors; remembers the query count at which each flagged it. */
class Watch {
  readonly blacklight = new BlacklightDetector(process.env.BLACKLIGHT ? (JSON.parse(process.env.BLACKLIGHT) as Partial<BlacklightOptions>) : {});
  readonly prada = new PradaDetector();
  readonly at = new Map<string, Flags>();
  feed(key: string, images: Float32Array, labels: Int32Array): void {
    const f = this.at.get(key) ?? { blacklight: null, prada: null };
    const b = this.blacklight.observe(key, images, labels);
    if (b && f.blacklight === null) f.blacklight = b.queries;
    const p = this.prada.observe(key, images, labels);
    if (p && f.prada === null) f.prada = p.queries;
    this.at.set(key, f);
  }
}

function benign(model: Model, clients: number, images: number): { flagged: { blacklight: number; prada: number }; maxShared: number; maxMatches: number } {
  const test = loadMnist('test');
  const w = new Watch();
  for (let c = 0; c < clients; c++) {
    const order = permutation(test.count, createRng(1000 + c));
    for (let s = 0; s < images; s += 100) {
      const part = subset(test, order.subarray(s, Math.min(images, s + 100)));
      w.feed(`benign-${c}`, part.images, labelImages(model, part.images, part.count));
    }
  }
  const flags = [...w.at.values()];
  const sums = w.blacklight.summaries();
  return {
    flagged: { blacklight: flags.filter((f) => f.blacklight !== null).length, prada: flags.filter((f) => f.prada !== null).length },
    maxShared: Math.max(...sums.map((s) => s.bestShared)),
    maxMatches: Math.max(...sums.map((s) => s.matches)),
  };
}

async function attack(model: Model, name: QueryAttackName, images: number, perKey: boolean, queries: number): Promise<{ blacklight: (number | null)[]; prada: (number | null)[] }> {
  const test = loadMnist('test');
  const ev = subset(test, adversarySplit(1, 150, images).evalSet);
  const w = new Watch();
  const clean = labelImages(model, ev.images, ev.count);
  const keys = perKey ? Array.from({ length: images }, (_, i) => `${name}-${i}`) : [`${name}-all`];
  for (let i = 0; i < ev.count; i++) {
    const key = keys[perKey ? i : 0];
    const x = ev.images.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
    if (perKey) w.feed(key, x, clean.subarray(i, i + 1));
  }
  if (!perKey) w.feed(keys[0], ev.images, clean);
  const settings = { attack: name, norm: 'linf' as const, queriesPerImage: queries, seed: 1 };
  if (perKey) {
    // One image per key: its probes, one request per round, as the lock-step runner would send them.
    for (let i = 0; i < ev.count; i++) {
      const x = ev.images.slice(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE);
      await runQueryAttack(settings, { images: x, count: 1, original: clean.subarray(i, i + 1) }, async (probes, n) => {
        const l = labelImages(model, probes, n);
        w.feed(keys[i], probes, l);
        return l;
      });
    }
  } else {
    await runQueryAttack(settings, { images: ev.images, count: ev.count, original: clean }, async (probes, n) => {
      const l = labelImages(model, probes, n);
      w.feed(keys[0], probes, l);
      return l;
    });
  }
  return { blacklight: keys.map((k) => w.at.get(k)?.blacklight ?? null), prada: keys.map((k) => w.at.get(k)?.prada ?? null) };
}

function summary(xs: (number | null)[]): { flagged: number; of: number; median: number | null; max: number | null } {
  const f = xs.filter((x): x is number => x !== null);
  return { flagged: f.length, of: xs.length, median: median(f), max: f.length ? Math.max(...f) : null };
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim' },
      clients: { type: 'number', default: 20 },
      images: { type: 'number', default: 2000 },
      attacks: { type: 'number', default: 20 },
      batched: { type: 'number', default: 100 },
      queries: { type: 'number', default: 500 },
      json: { type: 'string' },
    })
    .strict()
    .parseAsync();
  const info = await initBackend();
  console.log(describeBackend(info));
  const { model: layers } = await loadModel(a.model);
  const model = fromLayers(layers);
  const out: Record<string, unknown> = { model: a.model, backend: info.backend, date: new Date().toISOString() };
  out.benign = benign(model, a.clients, a.images);
  console.log('benign', JSON.stringify(out.benign));
  for (const name of ['rays', 'hsja'] as const) {
    const one = await attack(model, name, a.attacks, true, a.queries);
    out[`${name}PerImageKey`] = { blacklight: summary(one.blacklight), prada: summary(one.prada) };
    console.log(name, 'one image per key', JSON.stringify(out[`${name}PerImageKey`]));
    const all = await attack(model, name, a.batched, false, Math.min(a.queries, 200));
    out[`${name}Batched`] = { images: a.batched, blacklight: all.blacklight[0], prada: all.prada[0] };
    console.log(name, `${a.batched} images under one key`, JSON.stringify(out[`${name}Batched`]));
  }
  const stream = papernotStream(model, { seedSize: 150, rounds: 3 });
  const w = new Watch();
  for (let s = 0; s < stream.count; s += 100) {
    const n = Math.min(100, stream.count - s);
    w.feed('papernot', stream.images.subarray(s * IMAGE_SIZE, (s + n) * IMAGE_SIZE), stream.labels.subarray(s, s + n));
  }
  out.papernot = { queries: stream.count, roundStarts: stream.starts, ...w.at.get('papernot') };
  console.log('papernot', JSON.stringify(out.papernot));
  if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2) + '\n');
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
