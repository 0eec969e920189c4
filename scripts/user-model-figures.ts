/**
 * Figures for "attack your own model", victim side: for each user model (an ONNX file, a
 * Keras-layout TF.js folder; make them with scripts/export-victim.ts) served by a real victim
 * process: HTTP labels vs the model's own in-process predictions on MNIST test images, then the
 * default campaign against it (`npm run adversary -- run --victim URL`), then HTTP throughput
 * (batches of 100 uint8 images, 8 clients), the models measured back to back, rounds alternating.
 *
 *   npx tsx scripts/user-model-figures.ts --onnx models/exported/model.onnx --keras models/exported/keras-web-model --out runs/user-models
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import yargs from 'yargs';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { loadLayersFolder } from '../shared/model/layers-folder.js';
import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { provenance } from '../shared/versions.js';
import { answered, contractClient, type ContractClient } from '../shared/protocol/index.js';
import { NODE_TS, ROOT, spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { readTransferResults } from '../adversary/campaign/results.js';
import { fileRunStore } from '../adversary/run/store.js';
import { agentTransport } from './load-transport.js';

const CLIENTS = 8;
const BATCH = 100;

/** The victim's labels of uint8 images, or its refusal as an error. */
async function post(client: ContractClient, bytes: Uint8Array): Promise<number[]> {
  return answered('label', await client.label({ images: { format: 'uint8', bytes } })).labels;
}

/** The model's own labels, in-process: ONNX Runtime directly (NCHW), or TF.js predict on the folder as given. */
async function ownLabels(kind: 'onnx' | 'keras', path: string, floats: Float32Array, n: number): Promise<Int32Array> {
  if (kind === 'keras') {
    const folder = await loadLayersFolder(path);
    const out = tf.tidy(() => (folder.model.predict(tf.tensor4d(floats, [n, 28, 28, 1]), { batchSize: 1000 }) as tf.Tensor).argMax(1).dataSync() as Int32Array);
    folder.dispose();
    return out;
  }
  const session = await ort.InferenceSession.create(path);
  const out = new Int32Array(n);
  for (let s = 0; s < n; s += 1000) {
    const x = new ort.Tensor('float32', floats.subarray(s * IMAGE_SIZE, (s + 1000) * IMAGE_SIZE), [1000, 1, 28, 28]);
    const scores = (await session.run({ [session.inputNames[0]]: x }))[session.outputNames[0]].data as Float32Array;
    for (let i = 0; i < 1000; i++) {
      let best = 0;
      for (let k = 1; k < 10; k++) if (scores[i * 10 + k] > scores[i * 10 + best]) best = k;
      out[s + i] = best;
    }
  }
  await session.release();
  return out;
}

async function throughput(url: string, pixels: Uint8Array, images: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const client = contractClient(url, agentTransport(agent));
  const body = (i: number) => pixels.subarray(((i * BATCH) % 9000) * IMAGE_SIZE, (((i * BATCH) % 9000) + BATCH) * IMAGE_SIZE);
  await Promise.all(Array.from({ length: CLIENTS }, (_, c) => post(client, body(c))));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < images / BATCH) await post(client, body(next++));
  }));
  agent.destroy();
  return images / ((performance.now() - t0) / 1000);
}

function campaign(victimUrl: string, out: string, backend: string): Promise<number> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(NODE_TS[0], [...NODE_TS.slice(1), resolve(ROOT, 'adversary/cli.ts'), 'run', '--victim', victimUrl, '--out', out, '--backend', backend], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code) => (code === 0 ? done((performance.now() - t0) / 1000) : fail(new Error(`campaign exited with ${code}`))));
  });
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      onnx: { type: 'string', demandOption: true, describe: 'ONNX model (NCHW 1×28×28 MNIST classifier)' },
      keras: { type: 'string', demandOption: true, describe: 'Keras-layout TF.js folder (28×28×1 MNIST classifier)' },
      out: { type: 'string', default: 'runs/user-models', describe: 'folder for figures.json and the campaigns' },
      images: { type: 'number', default: 10_000, describe: 'test images compared (multiple of 1000)' },
      rounds: { type: 'number', default: 3, describe: 'throughput rounds per model (alternating)' },
      'skip-campaign': { type: 'boolean', default: false, describe: 'labels and throughput only' },
    })
    .strict()
    .parseAsync();
  const info = await initBackend();
  mkdirSync(a.out, { recursive: true });
  const test = loadMnist('test');
  const n = a.images;
  const pixels = test.pixels.subarray(0, n * IMAGE_SIZE);
  // What the victim decodes from uint8 bodies: exactly pixel / 255.
  const floats = Float32Array.from(pixels, (p) => p / 255);
  const models = { onnx: a.onnx, keras: a.keras } as const;
  const victims: Partial<Record<keyof typeof models, VictimProcess>> = {};
  const figures: Record<string, unknown> = { ...provenance(0), backend: describeBackend(info), images: n, note: 'shared 2-core machine: other processes ran at the same time' };
  try {
    for (const kind of ['onnx', 'keras'] as const) {
      const dir = join(a.out, kind);
      mkdirSync(dir, { recursive: true });
      const victim = await spawnVictim({
        args: ['--model', models[kind], '--port', '0', '--no-train', '--backend', info.backend, '--rate-limit', '0', '--log-level', 'warn', '--audit-log', join(dir, 'audit.jsonl'), '--ledger', join(dir, `ledger-${Date.now()}.jsonl`)],
        timeoutMs: 120_000,
        onLine: (l) => console.log(`[${kind} victim] ${l}`),
      });
      victims[kind] = victim;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const client = contractClient(victim.url, agentTransport(agent));
      const http: number[] = [];
      for (let s = 0; s < n; s += 1000) http.push(...(await post(client, pixels.subarray(s * IMAGE_SIZE, (s + 1000) * IMAGE_SIZE))));
      agent.destroy();
      const own = await ownLabels(kind, models[kind], floats, n);
      const same = http.filter((l, i) => l === own[i]).length;
      const accuracy = http.filter((l, i) => l === test.labels[i]).length / n;
      console.log(`${kind}: HTTP labels = own predictions on ${same}/${n} images; test accuracy over HTTP ${accuracy.toFixed(4)}`);
      figures[kind] = { model: models[kind], httpVsOwn: same / n, testAccuracy: accuracy };
      if (!a['skip-campaign']) {
        const runDir = join(dir, 'campaign');
        const seconds = await campaign(victim.url, runDir, info.backend);
        const r = readTransferResults(fileRunStore(runDir));
        const pick = r.epsilons.filter((p) => [0.1, 0.2, 0.3].some((e) => Math.abs(p.epsilon - e) < 1e-9));
        console.log(`${kind} campaign: agreement ${JSON.stringify(r.agreement)}; ${pick.map((p) => `ε ${p.epsilon}: misclassification ${p.misclassificationRate}`).join('; ')}; ${seconds.toFixed(1)} s`);
        Object.assign(figures[kind] as object, { campaign: { agreement: r.agreement, epsilons: pick, queries: r.queries, durationSeconds: r.durationSeconds, wallSeconds: seconds } });
      }
    }
    const rates: Record<string, number[]> = { onnx: [], keras: [] };
    for (let round = 0; round < a.rounds; round++) {
      for (const kind of ['onnx', 'keras'] as const) {
        const rate = await throughput((victims[kind] as VictimProcess).url, test.pixels, 4000);
        rates[kind].push(rate);
        console.log(`round ${round + 1} ${kind}: ${Math.round(rate)} images/s (batches of ${BATCH}, ${CLIENTS} clients)`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    figures.throughput = { batch: BATCH, clients: CLIENTS, onnx: rates.onnx.map(Math.round), keras: rates.keras.map(Math.round), medianOnnx: Math.round(median(rates.onnx)), medianKeras: Math.round(median(rates.keras)) };
  } finally {
    for (const v of Object.values(victims)) await v?.stop();
  }
  writeFileSync(join(a.out, 'figures.json'), JSON.stringify(figures, null, 2) + '\n');
  console.log(JSON.stringify(figures, null, 2));
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
