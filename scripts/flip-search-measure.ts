/**
 * How many images' labels flip along the substitute's FGSM direction, by each search: a full scan
 * of all 255 8-bit steps (the ground truth for "flips within range"), the bisection between 0 and
 * ε = 1, and the first-flip search (coarse scan, then bisection in the first flipping interval).
 * Both models answer in-process (the victim's model gives the labels its API would); the cost of
 * each search is counted as labeller images per image, what a victim would charge.
 *
 *   npx tsx scripts/flip-search-measure.ts --run runs/<campaign> --victim-model models/victim [--images 1000] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { inputGradientSign } from '../shared/attacks/index.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { EPSILON_STEP, flipDistances } from '../shared/boundary.js';
import type { Labeler } from '../shared/labeler.js';
import { isMain, runMain } from '../shared/cli.js';
import { adversarySplit, imagesTensor, IMAGE_SIZE, loadMnist, quantise, subset } from '../shared/datasets/index.js';
import { fromLayers, labelImages, type Model } from '../shared/model/model.js';
import { loadModel } from '../shared/model/model-io.js';
import { latestCheckpoint } from '../adversary/campaign/checkpoints.js';
import { fileRunStore } from '../adversary/run/store.js';

/** Every step k = 1..255 for every image: the first k whose label differs from the clean label. */
function fullScan(model: Model, x: Float32Array, d: Float32Array, n: number, reference: Int32Array): (number | null)[] {
  const first: (number | null)[] = new Array<number | null>(n).fill(null);
  for (let k = 1; k <= 255; k++) {
    const probes = new Float32Array(n * IMAGE_SIZE);
    for (let p = 0; p < probes.length; p++) probes[p] = x[p] + k * EPSILON_STEP * d[p];
    const labels = labelImages(model, quantise(probes), n);
    for (let i = 0; i < n; i++) if (first[i] === null && labels[i] !== reference[i]) first[i] = k * EPSILON_STEP;
  }
  return first;
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      run: { type: 'string', demandOption: true, describe: 'a finished campaign run folder (its last substitute checkpoint is used)' },
      'victim-model': { type: 'string', default: 'models/victim' },
      images: { type: 'number', default: 1000 },
      seed: { type: 'number', default: 1 },
      json: { type: 'string' },
    })
    .strict()
    .parseAsync();
  console.log(describeBackend(await initBackend()));
  const checkpoint = await latestCheckpoint(fileRunStore(a.run));
  if (!checkpoint) throw new Error(`${a.run} has no substitute checkpoint`);
  const substitute = fromLayers(checkpoint.model);
  const victim = fromLayers((await loadModel(a['victim-model'])).model);
  const ev = subset(loadMnist('test'), adversarySplit(a.seed, 150, a.images).evalSet);
  const n = ev.count;
  const subClean = labelImages(substitute, ev.images, n);
  const x = imagesTensor(ev.images, n);
  const g = inputGradientSign(substitute, x, subClean);
  const d = g.dataSync() as Float32Array;
  x.dispose();
  g.dispose();

  const out: Record<string, unknown> = { run: a.run, victimModel: a['victim-model'], images: n, date: new Date().toISOString() };
  for (const [name, model] of [['victim', victim], ['substitute', substitute]] as const) {
    const reference = labelImages(model, ev.images, n);
    const scan = fullScan(model, ev.images, d, n, reference);
    let asked = 0;
    const label: Labeler = async (images, count) => {
      asked += count;
      return labelImages(model, images, count);
    };
    const row: Record<string, unknown> = { fullScan: { flipped: scan.filter((v) => v !== null).length, perImage: 255 } };
    for (const search of ['bisect', 'first'] as const) {
      asked = 0;
      const got = await flipDistances(ev.images, d, n, label, { reference, search });
      const flipped = got.epsilons.filter((v) => v !== null).length;
      const exact = got.epsilons.filter((v, i) => v !== null && scan[i] !== null && Math.abs(v - (scan[i] as number)) < 1e-9).length;
      row[search] = { flipped, sameAsFirstCrossing: exact, queriesPerImage: asked / n, calls: got.calls };
    }
    out[name] = row;
    console.log(name, JSON.stringify(row));
  }
  if (a.json) writeFileSync(a.json, JSON.stringify(out, null, 2) + '\n');
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
