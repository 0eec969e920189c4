/**
 * Figures for the extraction detector , not part of `npm test`:
 * - false positives: 10 benign clients (one API key each) × 2,000 natural test images, each client its
 *   own shuffle of the test set, against a victim with --detector prada --detector-action log;
 * - detector overhead: label throughput of that traffic with and without the detector (same model,
 *   batches of 100 uint8 images, the clients concurrent), two alternating rounds each;
 * - detection: the default Papernot campaign (seed set 150, ρ 6, λ 0.1, τ 3; boundary measures off,
 *   which changes no attack query) against the same victim with its own key, and the query count at
 *   which the audit log says it was flagged — over all the key's queries and over its attack queries.
 *
 *   npx tsx scripts/detector-measure.ts [--model models/victim] [--clients 10] [--images 2000] [--no-campaign] [--json FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { createRng, permutation } from '../shared/random.js';
import { answered, contractClient, fetchTransport } from '../shared/protocol/index.js';
import { ADMIN_DETECTIONS_PATH } from '../victim/http/admin.js';
import type { DetectorView } from '../victim/detect/detection.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';

const ADMIN = 'detector-measure-admin-0123456789';
const keyOf = (id: string) => `${id}-secret-0123456789abcdef`;

async function label(url: string, key: string, bytes: Uint8Array): Promise<void> {
  answered('label', await contractClient(url, fetchTransport(), { apiKey: key }).label({ images: { format: 'uint8', bytes } }), url);
}

/** Every client sends its images in requests of `batch`, all clients at once; returns images/s. */
async function benign(url: string, ids: string[], images: number, batch: number, offset: number): Promise<number> {
  const test = loadMnist('test');
  const started = performance.now();
  await Promise.all(
    ids.map(async (id, c) => {
      const order = permutation(test.count, createRng(1000 + offset + c));
      const body = new Uint8Array(batch * IMAGE_SIZE);
      for (let s = 0; s < images; s += batch) {
        for (let i = 0; i < batch; i++) {
          const j = order[(s + i) % test.count];
          body.set(test.pixels.subarray(j * IMAGE_SIZE, (j + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
        }
        await label(url, keyOf(id), body);
      }
    }),
  );
  return (ids.length * images) / ((performance.now() - started) / 1000);
}

async function start(model: string, dir: string, name: string, detector: boolean): Promise<VictimProcess> {
  return spawnVictim({
    args: ['--model', model, '--port', '0', '--no-train', '--rate-limit', '0', '--log-level', 'warn', '--keys', join(dir, 'keys.json'),
      '--audit-log', join(dir, `${name}-audit.jsonl`), '--ledger', join(dir, `${name}-ledger.jsonl`),
      ...(detector ? ['--detector', 'prada', '--detector-action', 'log', '--admin-key-file', join(dir, 'admin.key')] : [])],
    timeoutMs: 120_000,
  });
}

export async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim' },
      clients: { type: 'number', default: 10 },
      images: { type: 'number', default: 2000 },
      batch: { type: 'number', default: 100 },
      campaign: { type: 'boolean', default: true },
      json: { type: 'string' },
    })
    .strict()
    .parseAsync();
  const info = await initBackend();
  const dir = mkdtempSync(join(tmpdir(), 'transferlab-detector-measure-'));
  const ids = (prefix: string) => Array.from({ length: args.clients }, (_, i) => `${prefix}${i}`);
  const all = [...ids('a'), ...ids('b'), ...ids('p'), ...ids('q'), 'campaign'];
  writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: all.map((id) => ({ id, key: keyOf(id) })) }));
  writeFileSync(join(dir, 'admin.key'), ADMIN);
  const withDetector = await start(args.model, dir, 'prada', true);
  const without = await start(args.model, dir, 'plain', false);
  const figures: Record<string, unknown> = { model: args.model, backend: describeBackend(info), clients: args.clients, images: args.images, batch: args.batch };
  try {
    // Warm both up, then alternate so that load from elsewhere on the machine hits both alike.
    await benign(without.url, ['q0'], 200, args.batch, 99);
    await benign(withDetector.url, ['q1'], 200, args.batch, 99);
    const rates = { without: [] as number[], with: [] as number[] };
    rates.without.push(await benign(without.url, ids('a'), args.images, args.batch, 0));
    rates.with.push(await benign(withDetector.url, ids('a'), args.images, args.batch, 0));
    rates.without.push(await benign(without.url, ids('b'), args.images, args.batch, 100));
    rates.with.push(await benign(withDetector.url, ids('b'), args.images, args.batch, 100));
    const view = (await (await fetch(`${withDetector.url}${ADMIN_DETECTIONS_PATH}`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json()) as DetectorView;
    const benignClients = view.clients.filter((c) => /^[ab]\d+$/.test(c.clientId));
    figures.throughput = rates;
    figures.overhead = 1 - rates.with.reduce((a, b) => a + b) / rates.without.reduce((a, b) => a + b);
    figures.falsePositives = view.detections.filter((d) => /^[ab]\d+$/.test(d.client)).length;
    figures.benignClients = benignClients.length;
    figures.benignMinW = Math.min(...benignClients.map((c) => c.minW ?? 1));
    console.log(`benign: ${figures.falsePositives} of ${benignClients.length} clients flagged; lowest W ${(figures.benignMinW as number).toFixed(4)}`);
    console.log(`throughput without / with detector (images/s): ${rates.without.map(Math.round).join(', ')} / ${rates.with.map(Math.round).join(', ')}; overhead ${((figures.overhead as number) * 100).toFixed(1)} %`);

    if (args.campaign) {
      const out = join(dir, 'campaign');
      const oracle = await createHttpOracle({ url: withDetector.url, apiKey: keyOf('campaign'), cacheDir: out });
      const t = performance.now();
      const results = await runCampaign(resolveConfig({ victim: withDetector.url, boundary: { enabled: false } }), out, oracle, { log: (l) => console.log(`  ${l}`) });
      await oracle.close();
      const after = (await (await fetch(`${withDetector.url}${ADMIN_DETECTIONS_PATH}`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json()) as DetectorView;
      const hit = after.detections.find((d) => d.client === 'campaign');
      // The campaign labels its 1,000 evaluation images (measurement queries) before the seed set.
      const measurementFirst = results.config.evalSize as number;
      figures.campaign = {
        flagged: Boolean(hit),
        w: hit?.w ?? null,
        keyQueriesAtFlag: hit?.queries ?? null,
        attackQueriesAtFlag: hit ? hit.queries - measurementFirst : null,
        attackQueries: results.queries.attack,
        untargetedTransferAt03: results.epsilons.find((p) => p.mode === 'untargeted' && p.epsilon === 0.3)?.transferRate ?? null,
        seconds: (performance.now() - t) / 1000,
      };
      console.log(`campaign: ${JSON.stringify(figures.campaign)}`);
    }
  } finally {
    await withDetector.stop();
    await without.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (args.json) writeFileSync(args.json, JSON.stringify(figures, null, 2) + '\n');
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
