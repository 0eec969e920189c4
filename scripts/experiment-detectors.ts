/**
 * Stateful detectors against adaptive attackers, on real victim processes over HTTP (not part of
 * `npm test`; run it through the heavy-job queue). For each detector configuration — none, PRADA,
 * Blacklight per key, Blacklight global, each with action `reject` — and each attacker — plain RayS,
 * Sybil over 10 and 100 keys (round-robin), query blinding, adaptive rejection sampling — one fresh
 * victim and one `query-attack` run (one image per request), measuring: success at ε 0.3 (each best
 * example checked on the model itself, since a blinded or resampled query is not the probe the
 * search records), queries per image, the probes the detector refused (flagged), and for how many
 * images the first refusal came within 50 queries. Then per detector the benign streams: `--clients`
 * keys × `--natural` distinct natural images (MNIST training images, requests of 100), and as many
 * keys re-uploading `--dup-bases` images `--dup-copies` times each with small edits (shift ±1 px,
 * brightness ±10/255, noise ±3/255): clients flagged and images refused.
 *
 *   npx tsx scripts/experiment-detectors.ts [--images 10] [--queries 200] [--clients 20] [--natural 2000] [--json FILE]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { ImageRecord, QueryAttackResults } from '../adversary/query/run.js';
import { isMain, runMain } from '../shared/cli.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { fromLayers, labelImages } from '../shared/model/model.js';
import { loadModel } from '../shared/model/model-io.js';
import { wireRequest } from '../shared/protocol/index.js';
import { createRng } from '../shared/random.js';
import { median } from '../shared/statistics.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';

// In the order they run: the goals' rows first, so a run cut short still answers them (the JSON is rewritten after every row).
const DETECTORS: Record<string, string[]> = {
  'blacklight-global': ['--detector', 'blacklight', '--blacklight-scope', 'global'],
  'blacklight-key': ['--detector', 'blacklight', '--blacklight-scope', 'key'],
  prada: ['--detector', 'prada'],
  none: [],
};
const ATTACKERS: Record<string, { keys: number; blinding?: boolean; adaptive?: boolean }> = {
  'sybil-100': { keys: 100 },
  adaptive: { keys: 1, adaptive: true },
  plain: { keys: 1 },
  'sybil-10': { keys: 10 },
  blinded: { keys: 1, blinding: true },
};
const ADMIN = 'admin-0123456789abcdef0123';
const EPSILON = 0.3;

interface Row {
  detector: string;
  attacker: string;
  images: number;
  success: number;
  /** What the run recorded (its own probes' labels), before the check on the model. */
  recordedSuccess: number;
  queriesPerImage: number;
  flagged: number;
  flaggedPerImage: number;
  /** Images whose first refused probe came within their first 50 queries. */
  refusedWithin50: number;
  seconds: number;
}

async function startVictim(dir: string, model: string, detector: string, clients: number): Promise<VictimProcess> {
  mkdirSync(dir, { recursive: true });
  const keys = Array.from({ length: clients }, (_, k) => ({ id: `k${k}`, key: `key-${k}-0123456789abcdef`, budget: 10_000_000 }));
  writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys }));
  writeFileSync(join(dir, 'admin.key'), `${ADMIN}\n`);
  const args = ['--model', model, '--keys', join(dir, 'keys.json'), '--port', '0', '--ledger', join(dir, 'ledger.jsonl'), '--audit-log', join(dir, 'audit.jsonl'),
    '--rate-limit', '0', '--log-level', 'silent', '--admin-key-file', join(dir, 'admin.key'), ...DETECTORS[detector]];
  if (detector !== 'none') args.push('--detector-action', 'reject');
  return spawnVictim({ args, timeoutMs: 120_000 });
}
const keyOf = (k: number) => `key-${k}-0123456789abcdef`;

async function attackRow(root: string, model: string, detector: string, attacker: string, o: { images: number; queries: number }, check: (u8: Uint8Array, n: number) => Int32Array): Promise<Row> {
  const a = ATTACKERS[attacker];
  const dir = join(root, `${detector}-${attacker}`);
  rmSync(dir, { recursive: true, force: true });
  const victim = await startVictim(dir, model, detector, a.keys);
  const t0 = performance.now();
  try {
    writeFileSync(join(dir, 'keys.txt'), Array.from({ length: a.keys }, (_, k) => keyOf(k)).join('\n'));
    const out = join(dir, 'run');
    await runQueryAttackCommand(
      { victim: victim.url, keysFile: join(dir, 'keys.txt'), requestSize: 1, images: o.images, queriesPerImage: o.queries, seed: 1, blinding: a.blinding, adaptive: a.adaptive, out },
      () => out,
    );
    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as QueryAttackResults;
    const records = JSON.parse(readFileSync(join(out, 'images.json'), 'utf8')) as (ImageRecord & { firstFlagged?: number | null })[];
    const adv = new Uint8Array(readFileSync(join(out, 'adversarial.u8')));
    const labels = check(adv, records.length);
    const ok = records.map((rec, i) => rec.linf !== null && rec.linf <= EPSILON + 1e-9 && labels[i] !== rec.clean);
    const flagged = r.detection?.flagged ?? 0;
    return {
      detector,
      attacker,
      images: records.length,
      success: ok.filter(Boolean).length / records.length,
      recordedSuccess: records.filter((rec) => rec.linf !== null && rec.linf <= EPSILON + 1e-9).length / records.length,
      queriesPerImage: median(records.map((rec) => rec.queries)) ?? 0,
      flagged,
      flaggedPerImage: flagged / records.length,
      refusedWithin50: records.filter((rec) => rec.firstFlagged != null && rec.firstFlagged <= 50).length,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    };
  } finally {
    await victim.stop();
  }
}

async function send(url: string, key: string, pixels: Uint8Array): Promise<{ status: number; refused: number }> {
  const req = wireRequest('label', { apiKey: key, images: { format: 'uint8', bytes: pixels } });
  const res = await fetch(`${url}${req.path}`, { method: req.method, headers: req.headers, body: pixels as Uint8Array<ArrayBuffer> });
  await res.text();
  const header = res.headers.get('x-rejected-images');
  return { status: res.status, refused: header ? header.split(',').length : 0 };
}

/** One image edited as a user re-uploading it would: shifted ±1 px, brighter or darker, a little noise. */
function edited(src: Uint8Array, rng: () => number): Uint8Array {
  const out = new Uint8Array(IMAGE_SIZE);
  const dx = Math.floor(rng() * 3) - 1;
  const dy = Math.floor(rng() * 3) - 1;
  const bright = Math.round((rng() * 2 - 1) * 10);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const sx = x - dx;
      const sy = y - dy;
      const v = sx >= 0 && sx < 28 && sy >= 0 && sy < 28 ? src[sy * 28 + sx] : 0;
      out[y * 28 + x] = Math.max(0, Math.min(255, v + bright + Math.round((rng() * 2 - 1) * 3)));
    }
  }
  return out;
}

async function benignRow(root: string, model: string, detector: string, o: { clients: number; natural: number; dupBases: number; dupCopies: number }) {
  const train = loadMnist('train');
  const result: Record<string, { clientsFlagged: number; imagesRefused: number; images: number }> = {};
  for (const stream of ['natural', 'near-duplicate'] as const) {
    const dir = join(root, `${detector}-benign-${stream}`);
    rmSync(dir, { recursive: true, force: true });
    const victim = await startVictim(dir, model, detector, o.clients);
    try {
      let refused = 0;
      let images = 0;
      // Clients take turns, one request each, as concurrent users would.
      const per = stream === 'natural' ? o.natural : o.dupBases * o.dupCopies;
      const rngs = Array.from({ length: o.clients }, (_, c) => createRng(7000 + c));
      for (let at = 0; at < per; at += 100) {
        for (let c = 0; c < o.clients; c++) {
          const n = Math.min(100, per - at);
          const body = new Uint8Array(n * IMAGE_SIZE);
          for (let j = 0; j < n; j++) {
            const q = at + j;
            if (stream === 'natural') body.set(train.pixels.subarray((c * o.natural + q) * IMAGE_SIZE, (c * o.natural + q + 1) * IMAGE_SIZE), j * IMAGE_SIZE);
            else {
              // Base b of this client, copy k: each image comes back dupCopies times, in rounds.
              const b = 30_000 + c * o.dupBases + (q % o.dupBases);
              body.set(edited(train.pixels.subarray(b * IMAGE_SIZE, (b + 1) * IMAGE_SIZE), rngs[c]), j * IMAGE_SIZE);
            }
          }
          const r = await send(victim.url, keyOf(c), body);
          images += n;
          refused += r.refused;
        }
      }
      const view = (await (await fetch(`${victim.url}/v1/admin/detections`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json()) as { detections: unknown[] };
      result[stream] = { clientsFlagged: view.detections.length, imagesRefused: refused, images };
    } finally {
      await victim.stop();
    }
  }
  return { detector, ...result };
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const a = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim' },
      images: { type: 'number', default: 10, describe: 'images each attack run attacks' },
      queries: { type: 'number', default: 200, describe: 'queries per image' },
      clients: { type: 'number', default: 20, describe: 'benign clients per stream' },
      natural: { type: 'number', default: 2000, describe: 'natural images per benign client' },
      'dup-bases': { type: 'number', default: 50 },
      'dup-copies': { type: 'number', default: 4 },
      detectors: { type: 'string', array: true, default: Object.keys(DETECTORS) },
      attackers: { type: 'string', array: true, default: Object.keys(ATTACKERS) },
      out: { type: 'string', default: '.tmp/experiment-detectors' },
      json: { type: 'string' },
    })
    .strict()
    .parseAsync();
  const info = await initBackend();
  console.log(`adversary on ${describeBackend(info)}`);
  const model = resolve(a.model);
  const { model: layers } = await loadModel(model);
  const m = fromLayers(layers);
  const check = (u8: Uint8Array, n: number) => labelImages(m, Float32Array.from(u8, (v) => v / 255), n);
  const started = new Date().toISOString();
  const rows: Row[] = [];
  const benign: Awaited<ReturnType<typeof benignRow>>[] = [];
  const settings = { images: a.images, queries: a.queries, clients: a.clients, natural: a.natural, dupBases: a['dup-bases'], dupCopies: a['dup-copies'] };
  const save = () => a.json && writeFileSync(a.json, JSON.stringify({ started, finished: new Date().toISOString(), settings, backend: info, rows, benign }, null, 2));
  for (const d of a.detectors) {
    for (const at of a.attackers) {
      if (d === 'none' && at !== 'plain') continue;
      const row = await attackRow(a.out, model, d, at, { images: a.images, queries: a.queries }, check);
      console.log(JSON.stringify(row));
      rows.push(row);
      save();
    }
    if (d !== 'none') {
      const b = await benignRow(a.out, model, d, { clients: a.clients, natural: a.natural, dupBases: a['dup-bases'], dupCopies: a['dup-copies'] });
      console.log(JSON.stringify(b));
      benign.push(b);
      save();
    }
  }
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
