import yargs from 'yargs';
import { ARCHITECTURES } from '../shared/architectures.js';
import { DATASET_HELP, DEFAULT_DATASET, loadDataset } from '../shared/datasets/index.js';
import { initBackend, describeBackend } from '../shared/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { assertWritableDir } from '../shared/fs-checks.js';
import { progressBar } from '../shared/progress.js';
import { trainVictim, validateTrainConfig, VICTIM_DEFAULTS, type VictimTrainConfig } from './train.js';
import { defenceFromArgs, DEFENCE_OPTIONS } from './defence.js';

export async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .scriptName('npm run victim:train --')
    .usage('$0 [options]\n\nTrain the victim (target) model on its dataset\'s training images (MNIST: the 60,000) and save it.')
    .options({
      arch: { type: 'string', default: VICTIM_DEFAULTS.arch, describe: `architecture: ${ARCHITECTURES.join(', ')}` },
      dataset: { type: 'string', default: DEFAULT_DATASET, describe: DATASET_HELP },
      epochs: { type: 'number', default: VICTIM_DEFAULTS.epochs, describe: 'passes over the training set' },
      'batch-size': { type: 'number', default: VICTIM_DEFAULTS.batchSize },
      'learning-rate': { type: 'number', default: VICTIM_DEFAULTS.learningRate, describe: 'Adam step size' },
      seed: { type: 'number', default: VICTIM_DEFAULTS.seed, describe: 'seed for initialisation, shuffling and dropout' },
      out: { type: 'string', default: VICTIM_DEFAULTS.out, describe: 'output folder (model.json, weights.bin, metadata.json)' },
      limit: { type: 'number', describe: 'train on the first N training images only (quick runs)' },
      init: { type: 'string', describe: 'start from the weights of this saved model (fine-tuning, e.g. more adversarial epochs at a lower rate)' },
      backend: { type: 'string', describe: 'tensorflow | wasm | cpu (default: best available; env TFJS_BACKEND)' },
      ...DEFENCE_OPTIONS,
    })
    .example('$0 --arch paper-cnn --epochs 8 --seed 1 --out models/victim', 'the default victim')
    .example('$0 --dataset fashion-mnist --out models/victim-fashion', 'a victim on Fashion-MNIST')
    .example('$0 --dataset ./my-images --arch lenet --out models/mine', 'a victim on an ImageFolder tree of PNGs')
    .example('$0 --adversarial fgsm --eps 0.3 --mix 0.5 --out models/victim-hardened', 'an adversarially trained victim')
    .strict()
    .help()
    .parseAsync();

  // A dataset that cannot be read fails here, before the backend starts or anything is trained.
  const dataset = loadDataset(args.dataset);
  const info = await initBackend(args.backend);
  const defence = defenceFromArgs(args);
  const config: VictimTrainConfig = {
    arch: args.arch,
    dataset: args.dataset,
    epochs: args.epochs,
    batchSize: args['batch-size'],
    learningRate: args['learning-rate'],
    seed: args.seed,
    out: args.out,
    limit: args.limit,
    init: args.init,
    defence: defence?.metadata,
    transformBatch: defence?.transformBatch,
  };
  validateTrainConfig(config);
  assertWritableDir(config.out, 'the model');
  console.log(
    `training ${config.arch} on ${dataset.name} (${Math.min(config.limit ?? Infinity, dataset.train.count)} images of ${dataset.shape.join('×')}, ${dataset.classes} classes) ` +
      `for ${config.epochs} epoch(s) on ${describeBackend(info)}`,
  );
  const bar = progressBar('{label} [{bar}] {value}/{total} batches | {stats} | ETA {eta_formatted}');
  const metadata = await trainVictim(config, {
    onBatchEnd: ({ epoch, batch, batches, loss, accuracy }) => {
      if (batch === 1) bar.start(batches, `epoch ${epoch + 1}/${config.epochs}`);
      if (batch % 10 === 0 || batch === batches) bar.update(batch, { stats: `loss ${loss.toFixed(4)} acc ${accuracy.toFixed(4)}` });
      if (batch === batches) bar.stop();
    },
    onEpochEnd: ({ epoch, loss, accuracy, imagesPerSecond }) =>
      console.log(`epoch ${epoch + 1}: loss ${loss.toFixed(4)}, train accuracy ${accuracy.toFixed(4)}, ${Math.round(imagesPerSecond)} images/s`),
  });
  console.log(
    `test accuracy ${Number(metadata.testAccuracy).toFixed(4)} in ${metadata.durationSeconds} s; saved to ${config.out}`,
  );
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
