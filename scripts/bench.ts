/**
 * Benchmarks (targets and figures: docs/performance.md): model throughput per architecture, the victim over HTTP,
 * the default campaign's wall time by phase (median of three runs), and `npm run demo` as a new user meets it (fresh, then with its victim
 * trained). Not part of `npm test`; targets live here.
 *
 *   npm run bench -- [--quick] [--json FILE] [--model DIR] [--skip-campaign] [--skip-demo]
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { inputGradientSign } from '../shared/attacks/index.js';
import { ARCHITECTURES, buildModel } from '../shared/model/architectures.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine, commandName } from '../shared/cli.js';
import { backendOption } from '../shared/cli-options.js';
import { fromLayers, predictLabels } from '../shared/model/model.js';
import { loadMnist } from '../shared/datasets/index.js';
import { seedGlobalRandom } from '../shared/random.js';
import { trainClassifier } from '../shared/model/training.js';
import { provenance } from '../shared/versions.js';
import { hasModel } from '../shared/model/model-io.js';
import { measureHttp, type HttpFigures } from './victim-load.js';
import { benchCampaign, type CampaignFigures } from './bench-campaign.js';
import { benchDemo, type DemoRun } from './bench-demo.js';

export interface ModelFigures {
  arch: string;
  trainImagesPerSecond: number;
  inferenceImagesPerSecond: number;
  inputGradientImagesPerSecond: number;
}

export interface BenchOptions {
  quick: boolean;
  /** Images per timed round (tiny in the test that keeps this code path alive), and rounds (best counts). */
  trainImages: number;
  inferImages: number;
  gradImages: number;
  rounds: number;
  archs: string[];
  model?: string;
  http: boolean;
  campaign: boolean;
  /** Time `npm run demo` in an empty folder, fresh and then with its victim trained (minutes; off in --quick). */
  demo?: boolean;
  log: (line: string) => void;
}

/**
 * images/s of fn: one warm-up call, then the best of `rounds` timed calls. The best round is the one
 * least disturbed by other work on a shared machine (the project's 2-core VMs vary by ±20 % run to run).
 */
function rate(images: number, fn: () => void, warm: () => void, rounds: number): number {
  warm();
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    fn();
    best = Math.max(best, images / ((performance.now() - t0) / 1000));
  }
  return best;
}

export function benchModel(arch: string, o: Pick<BenchOptions, 'trainImages' | 'inferImages' | 'gradImages' | 'rounds'>): ModelFigures {
  seedGlobalRandom(1);
  const train = loadMnist('train');
  const model = buildModel(arch);
  const n = o.trainImages;
  const fit = (count: number) =>
    trainClassifier(model, train.images.subarray(0, count * 784), train.labels.subarray(0, count), { epochs: 1, batchSize: 128, learningRate: 1e-3, seed: 1 });
  const trainRate = rate(n, () => fit(n), () => fit(Math.min(n, 512)), o.rounds);
  const m = fromLayers(model);
  const x = tf.tensor4d(train.images.subarray(0, o.inferImages * 784), [o.inferImages, 28, 28, 1]);
  const inferRate = rate(o.inferImages, () => predictLabels(m, x, 1000), () => predictLabels(m, x.slice(0, Math.min(o.inferImages, 1000)) as tf.Tensor4D), o.rounds);
  const g = x.slice(0, o.gradImages) as tf.Tensor4D;
  const labels = train.labels.slice(0, o.gradImages);
  const grad = () => inputGradientSign(m, g, labels, false, 256).dispose();
  const gradRate = rate(o.gradImages, grad, grad, o.rounds);
  x.dispose();
  g.dispose();
  model.dispose();
  return { arch, trainImagesPerSecond: Math.round(trainRate), inferenceImagesPerSecond: Math.round(inferRate), inputGradientImagesPerSecond: Math.round(gradRate) };
}

export async function runBench(o: BenchOptions): Promise<Record<string, unknown>> {
  const models: ModelFigures[] = [];
  for (const arch of o.archs) {
    const f = benchModel(arch, o);
    o.log(`${arch.padEnd(15)} train ${String(f.trainImagesPerSecond).padStart(6)}/s  inference ${String(f.inferenceImagesPerSecond).padStart(6)}/s  input gradients ${String(f.inputGradientImagesPerSecond).padStart(6)}/s`);
    models.push(f);
  }
  let http: HttpFigures | undefined;
  if (o.http) {
    http = await measureHttp({ model: o.model, quick: o.quick, log: o.log });
  }
  let campaign: CampaignFigures | undefined;
  if (o.campaign) campaign = await benchCampaign({ model: o.model, quick: o.quick, log: o.log });
  let demo: DemoRun[] | undefined;
  if (o.demo) demo = await benchDemo({ log: o.log });
  return {
    machine: { cores: availableParallelism(), memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    ...provenance(1),
    quick: o.quick,
    roundsPerFigure: o.rounds,
    models,
    http: http ?? null,
    campaign: campaign ?? null,
    demo: demo ?? null,
  };
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName(commandName('npm run bench --'))
    .options({
      quick: { type: 'boolean', default: false, describe: 'a smoke check in under a minute' },
      json: { type: 'string', describe: 'also write the figures as JSON to this file' },
      model: { type: 'string', describe: 'victim model for the HTTP and campaign figures (default models/victim if present)' },
      'skip-campaign': { type: 'boolean', default: false, describe: 'leave out the default campaign\'s wall time (three timed runs against a victim process, ~1.5 min; --quick: one small run)' },
      'skip-demo': { type: 'boolean', default: false, describe: 'leave out the two timed demos (fresh: trains a victim in a temporary folder, ~2 min; then with it trained); --quick leaves them out too' },
      backend: backendOption,
    })
    .example('$0 --quick --skip-campaign', 'a smoke check of the model and HTTP figures')
    .example('$0 --json runs/bench.json', 'every figure, also written as JSON')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  const info = await initBackend(a.backend);
  console.log(`benchmarks on ${describeBackend(info)}, ${availableParallelism()} cores${a.quick ? ' (quick)' : ''}`);
  const model = a.model ?? (hasModel('models/victim') ? 'models/victim' : undefined);
  const figures = await runBench({
    quick: a.quick,
    trainImages: a.quick ? 2048 : 7680,
    inferImages: a.quick ? 2000 : 5000,
    gradImages: a.quick ? 512 : 2048,
    rounds: a.quick ? 1 : 3,
    archs: a.quick ? ['paper-cnn', 'substitute-cnn'] : ARCHITECTURES,
    model,
    http: true,
    campaign: !a['skip-campaign'],
    demo: !a.quick && !a['skip-demo'],
    log: (l) => console.log(l),
  });
  if (a.json) {
    writeFileSync(a.json, JSON.stringify(figures, null, 2) + '\n');
    console.log(`wrote ${a.json}`);
  }
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
