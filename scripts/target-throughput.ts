/**
 * HTTP throughput of each target against one running victim: labels per second of fresh test images,
 * `--batch` images a request (torchserve: always one), `--concurrency` requests at a time (default one,
 * as the oracle sends them), the answer cache in memory so nothing is answered without a request. Every
 * image is a paid query on the victim.
 *
 *   npm run victim -- --protocol transferlab,oip,tfserving --model-name model --rate-limit 100000 &
 *   npx tsx scripts/target-throughput.ts --victim http://127.0.0.1:8080 --images 2000 --batch 100
 *   npx tsx scripts/target-throughput.ts --victim http://127.0.0.1:8080 --kinds http \
 *     --target-file examples/targets/transferlab-json-api.yaml
 *   npx tsx scripts/target-throughput.ts --victim http://127.0.0.1:8081 --kinds torchserve --model-name mnist --token …
 */
import yargs from 'yargs';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { TARGET_KINDS, type TargetKind, type TargetSettingsInput } from '../adversary/targets/settings.js';
import { isMain, runMain } from '../shared/cli.js';
import { loadDataset } from '../shared/datasets/index.js';

export interface ThroughputOptions {
  victim: string;
  kinds: TargetKind[];
  images: number;
  batch: number;
  modelName: string;
  apiKey?: string;
  /** The http target's file or the module target's script. */
  targetFile?: string;
  /** The torchserve target's inference token. */
  token?: string;
  concurrency?: number;
}

function targetOf(kind: TargetKind, o: ThroughputOptions): TargetSettingsInput {
  switch (kind) {
    case 'transferlab':
      return { target: kind, maxBatch: o.batch };
    case 'http':
    case 'module':
      return { target: kind, targetFile: o.targetFile, maxBatch: o.batch };
    case 'torchserve':
      return { target: kind, modelName: o.modelName, token: o.token };
    default:
      return { target: kind, modelName: o.modelName, maxBatch: o.batch };
  }
}

export async function targetThroughput(o: ThroughputOptions): Promise<{ kind: TargetKind; labelsPerSecond: number; seconds: number }[]> {
  const test = loadDataset('mnist').test;
  const pixels = 784;
  const rows = [];
  for (const kind of o.kinds) {
    const limits = o.concurrency === undefined ? undefined : { concurrency: o.concurrency };
    const oracle = await createTargetOracle({ url: o.victim, apiKey: o.apiKey, target: targetOf(kind, o), dataset: 'mnist', limits });
    // A warm-up batch (paid, not timed) so connection set-up is not counted.
    await oracle.label(test.images.subarray(0, o.batch * pixels), o.batch, 'measurement');
    const n = Math.min(o.images, test.count - o.batch);
    const t0 = performance.now();
    await oracle.label(test.images.subarray(o.batch * pixels, (o.batch + n) * pixels), n, 'measurement');
    const seconds = (performance.now() - t0) / 1000;
    await oracle.close();
    rows.push({ kind, labelsPerSecond: n / seconds, seconds });
  }
  return rows;
}

async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      victim: { type: 'string', demandOption: true, describe: 'a running victim serving the protocols measured' },
      kinds: { type: 'string', array: true, default: ['transferlab', 'oip', 'tfserving'], choices: [...TARGET_KINDS], describe: 'targets to measure' },
      images: { type: 'number', default: 2000, describe: 'fresh test images labelled per target (paid)' },
      batch: { type: 'number', default: 100, describe: 'images a request' },
      'model-name': { type: 'string', default: 'model', describe: 'the model\'s name on the oip, tfserving and torchserve routes' },
      'api-key': { type: 'string', describe: 'API key' },
      'target-file': { type: 'string', describe: 'the http target\'s file or the module target\'s script' },
      token: { type: 'string', describe: 'the torchserve target\'s inference token' },
      concurrency: { type: 'number', describe: 'requests in flight at once (default 1)' },
    })
    .strict()
    .parseAsync();
  const rows = await targetThroughput({ victim: a.victim, kinds: a.kinds as TargetKind[], images: a.images, batch: a.batch, modelName: a['model-name'], apiKey: a['api-key'], targetFile: a['target-file'], token: a.token, concurrency: a.concurrency });
  for (const r of rows) {
    const size = r.kind === 'torchserve' ? 'one image a request' : `batch ${a.batch}`;
    console.log(`${r.kind.padEnd(12)} ${r.labelsPerSecond.toFixed(0).padStart(6)} labels/s (${a.images} images, ${size}, concurrency ${a.concurrency ?? 1}, ${r.seconds.toFixed(2)} s)`);
  }
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
