/**
 * Load test of the victim service, not part of `npm test`:
 * - label throughput over HTTP, batches of 100 uint8 images from 8 concurrent clients, as a ratio
 *   of in-process inference throughput on the same model and backend (goal ≥ 0.8);
 * - latency p50 / p99 of single-image requests from 8 concurrent clients;
 * - images/s, p50 and p99 for every mix of batch 1 / 100, uint8 / JSON bodies, 1 / 8 clients.
 *
 *   npx tsx scripts/victim-load.ts [--model DIR|model.onnx] [--quick] [--backend wasm] [--json FILE]
 *
 * The victim runs as its own process (as in production); the clients run here, on the same cores.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { backendInfo, describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { backendOption } from '../shared/cli-options.js';
import { fromLayers, predictLabels } from '../shared/model/model.js';
import { hasModel, loadModel, readMetadata } from '../shared/model/model-io.js';
import { IMAGE_SIZE, imagesTensor, loadMnist } from '../shared/datasets/index.js';
import { TransferlabError } from '../shared/errors.js';
import { openServedModel } from '../victim/model/served-model.js';
import { spawnVictim } from '../victim/spawn.js';
import { trainVictim, VICTIM_DEFAULTS } from '../victim/train/train.js';
import { quantile } from '../shared/statistics.js';
import { answered, contractClient, type ContractClient, type ImagesBody } from '../shared/protocol/index.js';
import { agentTransport } from './load-transport.js';

export interface HttpFigures {
  model: string;
  arch: string;
  backend: string;
  threads: number;
  clients: number;
  batch: number;
  /** Median round, batches of 100 one after another (what one client would get from the model alone). */
  inProcessImagesPerSecond: number;
  /** The same with batches of 1000: the model's own ceiling, which micro-batching can approach. */
  inProcessLargeBatchImagesPerSecond: number;
  httpImagesPerSecond: number;
  /** Median over rounds of HTTP / in-process (batches of 100); the goal is ≥ 0.8. */
  ratio: number;
  ratioToLargeBatch: number;
  singleImage: { requests: number; requestsPerSecond: number; p50Ms: number; p99Ms: number };
  matrix: HttpCell[];
}

export interface HttpCell {
  batch: number;
  encoding: 'uint8' | 'json';
  clients: number;
  requests: number;
  imagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const BENCH_MODEL = '.cache/bench-victim';

/** The model to load-test: models/victim when present, else a quickly trained paper-cnn (cached). */
export async function benchVictimModel(log: (line: string) => void): Promise<string> {
  if (hasModel(VICTIM_DEFAULTS.out)) return VICTIM_DEFAULTS.out;
  if (hasModel(BENCH_MODEL)) return BENCH_MODEL;
  await initBackend();
  log(`no ${VICTIM_DEFAULTS.out}: training a ${VICTIM_DEFAULTS.arch} on 10,000 images for 1 epoch into ${BENCH_MODEL}`);
  await trainVictim({ ...VICTIM_DEFAULTS, epochs: 1, limit: 10_000, out: BENCH_MODEL });
  return BENCH_MODEL;
}

const CLIENTS = 8;
const BATCH = 100;

/** One label request; resolves to the number of labels, or rejects with the victim's refusal. */
async function post(client: ContractClient, images: ImagesBody): Promise<number> {
  return answered('label', await client.label({ images })).labels.length;
}

/** One cell of the matrix: `requests` requests of `batch` images from `clients` clients, each waiting for its answer. */
async function measureCell(url: string, pixels: Uint8Array, batch: number, encoding: HttpCell['encoding'], clients: number, requests: number): Promise<HttpCell> {
  // A few distinct bodies, built before the clock starts (a JSON client sends pixels / 255, 4 decimals).
  const bodies = Array.from({ length: 8 }, (_, i) => {
    const px = pixels.subarray(i * batch * IMAGE_SIZE, (i + 1) * batch * IMAGE_SIZE);
    if (encoding === 'uint8') return { format: 'uint8', bytes: Buffer.from(px) } as const;
    const inputs = Array.from({ length: batch }, (_, j) => Array.from(px.subarray(j * IMAGE_SIZE, (j + 1) * IMAGE_SIZE), (v) => Math.round((v / 255) * 1e4) / 1e4));
    return { json: JSON.stringify({ inputs }) };
  });
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const client = contractClient(url, agentTransport(agent));
  try {
    await Promise.all(Array.from({ length: clients }, (_, c) => post(client, bodies[c % bodies.length])));
    const latencies: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: clients }, async () => {
      while (next < requests) {
        const body = bodies[next++ % bodies.length];
        const s = performance.now();
        await post(client, body);
        latencies.push(performance.now() - s);
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const ms = (q: number): number => Number((quantile(latencies, q) ?? Number.NaN).toFixed(2));
    return { batch, encoding, clients, requests, imagesPerSecond: Math.round((requests * batch) / seconds), p50Ms: ms(0.5), p99Ms: ms(0.99) };
  } finally {
    agent.destroy();
  }
}

export async function measureHttp(o: { model?: string; quick: boolean; log: (line: string) => void }): Promise<HttpFigures> {
  const info = await initBackend();
  const modelDir = o.model ?? (await benchVictimModel(o.log));
  // The project's own folders, or a user's ONNX / TF.js layers model (an MNIST-shaped one: the load uses MNIST images).
  const own = hasModel(modelDir);
  const arch = own ? readMetadata(modelDir).arch : basename(modelDir);
  const test = loadMnist('test');
  const images = o.quick ? 1000 : 4000;

  // In-process: the same model and backend, labelling the same batches of 100 one after another.
  const model = own ? (await loadModel(modelDir)).model : undefined;
  const served = own ? undefined : await openServedModel(modelDir);
  if (served && served.info.inputShape.join('x') !== '28x28x1') {
    await served.close();
    throw new TransferlabError('victim_mismatch', `${modelDir} takes ${served.info.inputShape.join('×')} images; the load test sends MNIST 28×28×1`);
  }
  const m = model ? fromLayers(model) : undefined;
  const x = imagesTensor(test.images.subarray(0, images * IMAGE_SIZE), images);
  const inProcess = async (batch: number) => {
    const t0 = performance.now();
    for (let s = 0; s < images; s += batch) {
      if (m) tf.tidy(() => void predictLabels(m, x.slice([s, 0, 0, 0], [batch, -1, -1, -1]), batch));
      else await served?.label(test.images.subarray(s * IMAGE_SIZE, (s + batch) * IMAGE_SIZE), batch);
    }
    return images / ((performance.now() - t0) / 1000);
  };
  await inProcess(BATCH); // warm-up

  const dir = mkdtempSync(join(tmpdir(), 'transferlab-load-'));
  const victim = await spawnVictim({
    args: ['--model', modelDir, '--port', '0', '--no-train', '--backend', info.backend, '--rate-limit', '0', '--log-level', 'warn', '--audit-log', join(dir, 'audit.jsonl'), '--ledger', join(dir, 'ledger.jsonl')],
    timeoutMs: 120_000,
  });
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const url = victim.url;
  const client = contractClient(url, agentTransport(agent));
  try {
    const batchBody = (i: number): ImagesBody => ({ format: 'uint8', bytes: test.pixels.subarray(((i * BATCH) % 9000) * IMAGE_SIZE, (((i * BATCH) % 9000) + BATCH) * IMAGE_SIZE) });
    // Warm-up: connections open, kernels and JIT hot.
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => post(client, batchBody(c))));
    const overHttp = async () => {
      let next = 0;
      const requests = images / BATCH;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (next < requests) await post(client, batchBody(next++));
        }),
      );
      return images / ((performance.now() - t0) / 1000);
    };
    // Rounds alternate in-process and HTTP so that load from other processes on a shared machine
    // hits both sides of each ratio alike; the median round is reported.
    const rounds: { inProcess: number; large: number; http: number }[] = [];
    for (let r = 0; r < (o.quick ? 1 : 3); r++) {
      const round = { inProcess: await inProcess(BATCH), large: await inProcess(1000), http: await overHttp() };
      rounds.push(round);
      o.log(
        `round ${r + 1}: in-process ${Math.round(round.inProcess)} images/s (batches of ${BATCH}), ${Math.round(round.large)} (batches of 1000); ` +
          `HTTP ${Math.round(round.http)} images/s = ${(round.http / round.inProcess).toFixed(2)} × / ${(round.http / round.large).toFixed(2)} ×`,
      );
    }
    x.dispose();
    model?.dispose();
    await served?.close();
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const ratio = median(rounds.map((r) => r.http / r.inProcess));
    const ratioToLargeBatch = median(rounds.map((r) => r.http / r.large));
    const inProcessRate = median(rounds.map((r) => r.inProcess));
    const largeBatchRate = median(rounds.map((r) => r.large));
    const httpRate = median(rounds.map((r) => r.http));
    o.log(
      `${arch} on ${describeBackend(info)}, ${CLIENTS} clients × batches of ${BATCH} uint8 images: HTTP ${Math.round(httpRate)} images/s; ` +
        `median ratio ${ratio.toFixed(2)} to in-process batches of ${BATCH}, ${ratioToLargeBatch.toFixed(2)} to batches of 1000`,
    );

    const matrix: HttpCell[] = [];
    for (const batch of [1, BATCH]) {
      for (const encoding of ['uint8', 'json'] as const) {
        for (const clients of [1, CLIENTS]) {
          const requests = (batch === 1 ? 1200 : 40) / (o.quick ? 10 : 1);
          const cell = await measureCell(url, test.pixels, batch, encoding, clients, requests);
          matrix.push(cell);
          o.log(`  batch ${String(batch).padStart(3)} ${encoding.padEnd(5)} ${clients} client(s): ${String(cell.imagesPerSecond).padStart(6)} images/s, p50 ${cell.p50Ms.toFixed(1)} ms, p99 ${cell.p99Ms.toFixed(1)} ms`);
        }
      }
    }
    // Single-image requests from 8 clients: the matrix's batch-1 uint8 cell.
    const single = matrix.find((c) => c.batch === 1 && c.encoding === 'uint8' && c.clients === CLIENTS) as HttpCell;
    o.log(`single-image requests, ${CLIENTS} clients: p50 ${single.p50Ms.toFixed(1)} ms, p99 ${single.p99Ms.toFixed(1)} ms, ${single.imagesPerSecond} requests/s`);
    return {
      model: modelDir,
      arch,
      backend: backendInfo().backend,
      threads: backendInfo().threads,
      clients: CLIENTS,
      batch: BATCH,
      inProcessImagesPerSecond: Math.round(inProcessRate),
      inProcessLargeBatchImagesPerSecond: Math.round(largeBatchRate),
      httpImagesPerSecond: Math.round(httpRate),
      ratio: Number(ratio.toFixed(3)),
      ratioToLargeBatch: Number(ratioToLargeBatch.toFixed(3)),
      singleImage: { requests: single.requests, requestsPerSecond: single.imagesPerSecond, p50Ms: single.p50Ms, p99Ms: single.p99Ms },
      matrix,
    };
  } finally {
    agent.destroy();
    await victim.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName('npx tsx scripts/victim-load.ts')
    .options({
      model: { type: 'string', describe: `model folder, .onnx file or TF.js layers folder of a 28×28×1 classifier (default ${VICTIM_DEFAULTS.out}, else a quick paper-cnn in ${BENCH_MODEL})` },
      quick: { type: 'boolean', default: false, describe: 'fewer requests' },
      backend: backendOption,
      json: { type: 'string', describe: 'also write the figures to this JSON file' },
    })
    .strict()
    .help()
    .parseAsync();
  await initBackend(a.backend);
  const figures = await measureHttp({ model: a.model, quick: a.quick, log: (l) => console.log(l) });
  if (a.json) writeFileSync(a.json, JSON.stringify(figures, null, 2) + '\n');
  console.log(JSON.stringify(figures));
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
