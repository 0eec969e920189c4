/**
 * Stateful detectors against adaptive attackers, on real victim processes over HTTP (not part of
 * `npm test`; run it through the heavy-job queue). For each detector configuration — none, PRADA,
 * Blacklight per key, Blacklight global (and, when asked, PRADA + Blacklight global) — each action
 * (`reject`: the flagged query is refused, the key served on; `block`: at the detection the key is
 * refused for good) and each attacker — plain RayS, Sybil over 10 and 100 keys (round-robin; a blocked
 * key is dropped), query blinding, adaptive rejection sampling (and against Blacklight global, adaptive
 * over 100 Sybil keys) — one fresh victim and one `query-attack` run (one image per request),
 * measuring: success at ε 0.3 (each best example checked on the model itself, since a blinded or
 * resampled query is not the probe the search records), queries per image, the probes the victim
 * refused, the probes Blacklight matched (victim side), the keys it flagged, and for how many images
 * the attack was detected within 50 queries (reject: first refusal; block: the search ended by the
 * block). Then per detector and action the benign streams: `--clients` keys × `--natural` distinct
 * natural images (MNIST training images, requests of 100), and as many keys re-uploading `--dup-bases`
 * images `--dup-copies` times each with small edits (shift ±1 px, brightness ±10/255, noise ±3/255):
 * clients flagged and images refused.
 *
 *   npx tsx scripts/experiment-detectors.ts [--images 27] [--queries 120] [--actions reject block] [--json FILE]
 */
import { execFileSync } from 'node:child_process';
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
import { provenance } from '../shared/versions.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';

const ACTIONS = ['reject', 'block'] as const;
type Action = (typeof ACTIONS)[number];

// In the order they run: the goals' rows first, so a run cut short still answers them (the JSON is rewritten after every row).
const DETECTORS: Record<string, { args: string[]; actions?: Action[] }> = {
  'blacklight-global': { args: ['--detector', 'blacklight', '--blacklight-scope', 'global'] },
  'blacklight-key': { args: ['--detector', 'blacklight', '--blacklight-scope', 'key'] },
  prada: { args: ['--detector', 'prada'] },
  none: { args: [] },
  // Candidates beyond the defaults (--detectors): both detectors on one global Blacklight store; and a
  // key blocked at its first match (with reject, every match is refused whatever --blacklight-matches says).
  'prada+blacklight-global': { args: ['--detector', 'prada', 'blacklight', '--blacklight-scope', 'global'] },
  'blacklight-global-m1': { args: ['--detector', 'blacklight', '--blacklight-scope', 'global', '--blacklight-matches', '1'], actions: ['block'] },
};
const ATTACKERS: Record<string, { keys: number; blinding?: boolean; adaptive?: boolean; only?: string[] }> = {
  'sybil-100': { keys: 100 },
  adaptive: { keys: 1, adaptive: true },
  plain: { keys: 1 },
  'sybil-10': { keys: 10 },
  blinded: { keys: 1, blinding: true },
  // The strongest combination, where Sybil keys alone no longer pass.
  'adaptive-sybil-100': { keys: 100, adaptive: true, only: ['blacklight-global', 'prada+blacklight-global', 'blacklight-global-m1'] },
};
const ADMIN = 'admin-0123456789abcdef0123';
const EPSILON = 0.3;
const SEED = 1;

interface Row {
  detector: string;
  action: Action | null;
  attacker: string;
  images: number;
  success: number;
  /** What the run recorded (its own probes' labels), before the check on the model. */
  recordedSuccess: number;
  queriesPerImage: number;
  /** Probes the victim refused (403 query_rejected, resamples included); a blocked key's one refused request is not a probe answered. */
  refused: number;
  refusedPerImage: number;
  /** Blacklight's matches over every key, as the victim counted them (its probes it judged near-copies). */
  matches: number;
  /** Keys the victim flagged (detections), of the keys the attacker had. */
  keysFlagged: number;
  keys: number;
  /** reject: images whose first refused probe came within their first 50 queries; block: images whose search the block ended within 50. */
  detectedWithin50: number;
  stopped: string | null;
  seconds: number;
  testIndices: number[];
}

async function startVictim(dir: string, model: string, detector: string, action: Action | null, clients: number): Promise<VictimProcess> {
  mkdirSync(dir, { recursive: true });
  const keys = Array.from({ length: clients }, (_, k) => ({ id: `k${k}`, key: keyOf(k), budget: 10_000_000 }));
  writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys }));
  writeFileSync(join(dir, 'admin.key'), `${ADMIN}\n`);
  const args = ['--model', model, '--keys', join(dir, 'keys.json'), '--port', '0', '--ledger', join(dir, 'ledger.jsonl'), '--audit-log', join(dir, 'audit.jsonl'),
    '--rate-limit', '0', '--log-level', 'silent', '--admin-key-file', join(dir, 'admin.key'), ...DETECTORS[detector].args];
  if (action) args.push('--detector-action', action);
  return spawnVictim({ args, timeoutMs: 120_000 });
}
const keyOf = (k: number) => `key-${k}-0123456789abcdef`;

interface DetectionsView {
  detections: unknown[];
  clients: { detector?: string; matches?: number }[];
}
async function detections(url: string): Promise<DetectionsView> {
  return (await (await fetch(`${url}/v1/admin/detections`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json()) as DetectionsView;
}

async function attackRow(root: string, model: string, detector: string, action: Action | null, attacker: string, o: { images: number; queries: number }, check: (u8: Uint8Array, n: number) => Int32Array): Promise<Row> {
  const a = ATTACKERS[attacker];
  const dir = join(root, `${detector}-${action ?? 'none'}-${attacker}`);
  rmSync(dir, { recursive: true, force: true });
  const victim = await startVictim(dir, model, detector, action, a.keys);
  const t0 = performance.now();
  try {
    writeFileSync(join(dir, 'keys.txt'), Array.from({ length: a.keys }, (_, k) => keyOf(k)).join('\n'));
    const out = join(dir, 'run');
    await runQueryAttackCommand(
      { victim: victim.url, keysFile: join(dir, 'keys.txt'), requestSize: 1, images: o.images, queriesPerImage: o.queries, seed: SEED, blinding: a.blinding, adaptive: a.adaptive, out },
      () => out,
    );
    const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as QueryAttackResults;
    const records = JSON.parse(readFileSync(join(out, 'images.json'), 'utf8')) as (ImageRecord & { firstFlagged?: number | null })[];
    const adv = new Uint8Array(readFileSync(join(out, 'adversarial.u8')));
    const labels = check(adv, records.length);
    const ok = records.map((rec, i) => rec.linf !== null && rec.linf <= EPSILON + 1e-9 && labels[i] !== rec.clean);
    const refused = r.detection?.flagged ?? 0;
    const view = await detections(victim.url);
    const detected = (rec: ImageRecord & { firstFlagged?: number | null }) =>
      action === 'block' ? rec.end === 'key_blocked' && rec.queries <= 50 : rec.firstFlagged != null && rec.firstFlagged <= 50;
    return {
      detector,
      action,
      attacker,
      images: records.length,
      success: ok.filter(Boolean).length / records.length,
      recordedSuccess: records.filter((rec) => rec.linf !== null && rec.linf <= EPSILON + 1e-9).length / records.length,
      queriesPerImage: median(records.map((rec) => rec.queries)) ?? 0,
      refused,
      refusedPerImage: refused / records.length,
      matches: view.clients.reduce((s, c) => s + (c.matches ?? 0), 0),
      keysFlagged: view.detections.length,
      keys: a.keys,
      detectedWithin50: records.filter(detected).length,
      stopped: r.stopped,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
      testIndices: records.map((rec) => rec.testIndex),
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

async function benignRow(root: string, model: string, detector: string, action: Action, o: { clients: number; natural: number; dupBases: number; dupCopies: number }) {
  const train = loadMnist('train');
  const result: Record<string, { clientsFlagged: number; imagesRefused: number; imagesBlocked: number; images: number }> = {};
  for (const stream of ['natural', 'near-duplicate'] as const) {
    const dir = join(root, `${detector}-${action}-benign-${stream}`);
    rmSync(dir, { recursive: true, force: true });
    const victim = await startVictim(dir, model, detector, action, o.clients);
    try {
      let refused = 0;
      let blocked = 0;
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
          // A blocked key's request is refused whole (403 extraction_suspected), unread.
          if (r.status === 403 && r.refused === 0) blocked += n;
        }
      }
      const view = await detections(victim.url);
      result[stream] = { clientsFlagged: view.detections.length, imagesRefused: refused, imagesBlocked: blocked, images };
    } finally {
      await victim.stop();
    }
  }
  return { detector, action, ...result };
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  const a = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim' },
      // 27: prime to 10 and 100, so round-robin Sybil keys do not each keep to a fixed subset of the images.
      images: { type: 'number', default: 27, describe: 'images each attack run attacks (the first of the seeded evaluation split)' },
      queries: { type: 'number', default: 120, describe: 'queries per image' },
      clients: { type: 'number', default: 20, describe: 'benign clients per stream' },
      natural: { type: 'number', default: 2000, describe: 'natural images per benign client' },
      'dup-bases': { type: 'number', default: 50 },
      'dup-copies': { type: 'number', default: 4 },
      detectors: { type: 'string', array: true, default: ['blacklight-global', 'blacklight-key', 'prada', 'none'], choices: Object.keys(DETECTORS) },
      actions: { type: 'string', array: true, default: [...ACTIONS], choices: [...ACTIONS] },
      attackers: { type: 'string', array: true, default: Object.keys(ATTACKERS), choices: Object.keys(ATTACKERS) },
      benign: { type: 'boolean', default: true, describe: 'also run the benign streams' },
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
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
  const commit = `${git('rev-parse', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''}`;
  const settings = { images: a.images, queries: a.queries, seed: SEED, clients: a.clients, natural: a.natural, dupBases: a['dup-bases'], dupCopies: a['dup-copies'], argv };
  const save = () => a.json && writeFileSync(a.json, JSON.stringify({ started, finished: new Date().toISOString(), commit, ...provenance(SEED), settings, backend: info, rows, benign }, null, 2));
  for (const d of a.detectors) {
    for (const action of d === 'none' ? [null] : (a.actions as Action[]).filter((x) => DETECTORS[d].actions?.includes(x) ?? true)) {
      for (const at of a.attackers) {
        if (d === 'none' && at !== 'plain') continue;
        if (ATTACKERS[at].only && !ATTACKERS[at].only.includes(d)) continue;
        const row = await attackRow(a.out, model, d, action, at, { images: a.images, queries: a.queries }, check);
        console.log(JSON.stringify({ ...row, testIndices: undefined }));
        // Every row attacks the same images (the seed's evaluation split).
        if (rows.length && rows[0].testIndices.join() !== row.testIndices.join()) throw new Error(`row ${d}/${action}/${at} attacked other images than the first row`);
        rows.push(row);
        save();
      }
      if (d !== 'none' && action && a.benign) {
        const b = await benignRow(a.out, model, d, action, { clients: a.clients, natural: a.natural, dupBases: a['dup-bases'], dupCopies: a['dup-copies'] });
        console.log(JSON.stringify(b));
        benign.push(b);
        save();
      }
    }
  }
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
