import yargs from 'yargs';
import { ARCHITECTURES } from '../../shared/model/architectures.js';
import { DATASET_HELP, DEFAULT_DATASET, loadDataset } from '../../shared/datasets/index.js';
import { initBackend, describeBackend } from '../../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine, commandName } from '../../shared/cli.js';
import { backendOption } from '../../shared/cli-options.js';
import { assertWritableDir } from '../../shared/fs-checks.js';
import { progressBar } from '../../shared/progress.js';
import { RECIPES, ROBUST_DEFAULTS, trainingDefaults, trainVictim, validateTrainConfig, VICTIM_DEFAULTS, type RecipeName, type VictimTrainConfig } from './train.js';
import { defenceFromArgs, DEFENCE_OPTIONS, ROBUST_RECIPES } from './defence.js';
import { GUARD_DEFAULTS } from './guard.js';
import { SCHEDULES, type ScheduleName } from './schedule.js';

const pct = (v: number) => v.toFixed(4);
const describeRecipe = (name: RecipeName) => {
  const r = RECIPES[name];
  return `${r.epochs} epochs, batch ${r.batchSize}, ${r.schedule === 'one-cycle' ? `one-cycle rate peaking at ${r.learningRate}` : `constant rate ${r.learningRate}`}`;
};

export async function main(argv: string[]): Promise<number> {
  const both = (plain: unknown, robust: unknown) => `default ${String(plain)}; ${String(robust)} with --adversarial ${ROBUST_RECIPES.join('|')}`;
  const args = await yargs(argv)
    .scriptName(commandName('npm run victim:train --'))
    .usage(
      '$0 [options]\n\nTrain the victim (target) model on its dataset\'s training images (MNIST: the 60,000) and save it.\n\n' +
        `With --adversarial ${ROBUST_RECIPES.join(', ')} the defaults change to the robust recipe: --arch ${ROBUST_DEFAULTS.arch}, ` +
        `--epochs ${ROBUST_DEFAULTS.epochs}, --eps-warmup ${ROBUST_DEFAULTS.epsilonWarmup}, --batch-size ${ROBUST_DEFAULTS.batchSize}, --learning-rate ${ROBUST_DEFAULTS.learningRate} (the peak of a ` +
        `${ROBUST_DEFAULTS.schedule} schedule), and the catastrophic-overfitting guard on (PGD on ${GUARD_DEFAULTS.images} held-back training images, ` +
        `${GUARD_DEFAULTS.checksPerEpoch} times an epoch; the most robust weights are kept). ` +
        `The robust victim of the README is --adversarial pgd with these defaults (2 PGD steps a batch); --adversarial fgsm-rs is cheaper per step but drifts into gradient masking on MNIST at ε 0.3; --adversarial trades trains the TRADES loss (clean cross-entropy + β · KL to an attacked copy, --beta, --pgd-steps).`,
    )
    .options({
      recipe: {
        type: 'string',
        choices: Object.keys(RECIPES),
        describe: `plain training's settings: quick (default: ${describeRecipe('quick')}) or paper (the seed paper's: ${describeRecipe('paper')}); --epochs, --batch-size, --learning-rate and --schedule override either`,
      },
      arch: { type: 'string', describe: `architecture: ${ARCHITECTURES.join(', ')} (${both(VICTIM_DEFAULTS.arch, ROBUST_DEFAULTS.arch)})` },
      dataset: { type: 'string', default: DEFAULT_DATASET, describe: DATASET_HELP },
      epochs: { type: 'number', describe: `passes over the training set (${both(VICTIM_DEFAULTS.epochs, ROBUST_DEFAULTS.epochs)})` },
      'batch-size': { type: 'number', describe: both(VICTIM_DEFAULTS.batchSize, ROBUST_DEFAULTS.batchSize) },
      'learning-rate': { type: 'number', describe: `Adam step size: the constant rate, or the peak of a one-cycle schedule (${both(VICTIM_DEFAULTS.learningRate, ROBUST_DEFAULTS.learningRate)})` },
      schedule: { type: 'string', choices: SCHEDULES, describe: `learning-rate schedule (${both(VICTIM_DEFAULTS.schedule, ROBUST_DEFAULTS.schedule)})` },
      seed: { type: 'number', default: VICTIM_DEFAULTS.seed, describe: 'seed for initialisation, shuffling, dropout and random starts' },
      out: { type: 'string', default: VICTIM_DEFAULTS.out, describe: 'output folder (model.json, weights.bin, metadata.json)' },
      limit: { type: 'number', describe: 'train on the first N training images only (quick runs)' },
      init: { type: 'string', describe: 'start from the weights of this saved model (fine-tuning, e.g. more adversarial epochs at a lower rate)' },
      resume: { type: 'boolean', default: false, describe: 'continue an interrupted run from its checkpoint (<out>.training, written at every guard check or 3 times an epoch); same settings required, same weights at the end as an uninterrupted run' },
      backend: backendOption,
      ...DEFENCE_OPTIONS,
      'eps-warmup': { type: 'number', describe: `epochs over which ε and α grow linearly from 0 to full size (${both(0, ROBUST_DEFAULTS.epsilonWarmup)})` },
      guard: { type: 'boolean', describe: `catastrophic-overfitting guard (default: on with ${ROBUST_RECIPES.join(', ')}, off otherwise)` },
      'guard-images': { type: 'number', default: GUARD_DEFAULTS.images, describe: 'training images held back for the guard' },
      'guard-checks': { type: 'number', default: GUARD_DEFAULTS.checksPerEpoch, describe: 'guard checks per epoch (the last closes the epoch)' },
      'weight-average': { type: 'number', describe: 'keep an exponential moving average of the weights with this decay (e.g. 0.999) and save it instead of the last weights (default: off)' },
      'guard-drop': { type: 'number', default: GUARD_DEFAULTS.collapseDrop, describe: 'a PGD accuracy this far below the best reading is a collapse: restore the best weights and multiply α by 0.8 (stop after the third)' },
    })
    .example('$0 --out models/victim', 'the default (undefended) victim: paper-cnn, the quick recipe')
    .example('$0 --recipe paper --seed 1 --out models/victim', "the seed paper's recipe: 8 epochs at a constant rate (the README's reference victim)")
    .example('$0 --adversarial pgd --eps 0.3 --out models/victim-robust', 'the robust victim: PGD-2 training of wong-wide, ~10 min on 2 cores')
    .example('$0 --adversarial fgsm-rs --eps 0.3 --out models/victim-fgsm-rs', 'fast adversarial training (Wong et al.): one step from a random start')
    .example('$0 --adversarial pgd --pgd-steps 7 --eps 0.3 --out models/victim-pgd7', 'Madry et al.\'s PGD training with more steps (K+1 gradients a step)')
    .example('$0 --adversarial trades --eps 0.3 --out models/victim-trades', 'TRADES (Zhang et al.): clean CE + 6 · KL(f(x) ‖ f(x′)), 2 inner steps')
    .example('$0 --adversarial trades --eps 0.3 --epochs 10 --weight-average 0.999 --out models/victim-trades-10-ema', 'the most robust recipe measured: TRADES over 10 epochs, the weights averaged (~19 min on 2 cores)')
    .example('$0 --dataset fashion-mnist --out models/victim-fashion', 'a victim on Fashion-MNIST')
    .example('$0 --dataset ./my-images --arch lenet --out models/mine', 'a victim on an ImageFolder tree of PNGs')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();

  // A dataset that cannot be read fails here, before the backend starts or anything is trained.
  const dataset = loadDataset(args.dataset);
  const info = await initBackend(args.backend);
  const robust = (ROBUST_RECIPES as readonly string[]).includes(args.adversarial);
  const base = trainingDefaults({ recipe: args.recipe, robust });
  const defence = defenceFromArgs({ ...args, seed: args.seed });
  const guardOn = args.guard ?? robust;
  const config: VictimTrainConfig = {
    arch: args.arch ?? base.arch,
    dataset: args.dataset,
    epochs: args.epochs ?? base.epochs,
    batchSize: args['batch-size'] ?? base.batchSize,
    learningRate: args['learning-rate'] ?? base.learningRate,
    schedule: (args.schedule as ScheduleName | undefined) ?? base.schedule,
    epsilonWarmup: defence ? (args['eps-warmup'] ?? (robust ? ROBUST_DEFAULTS.epsilonWarmup : 0)) : undefined,
    seed: args.seed,
    out: args.out,
    limit: args.limit,
    init: args.init,
    resume: args.resume,
    weightAverage: args['weight-average'],
    defence: defence?.metadata,
    transformBatch: defence?.transformBatch,
    batchLoss: defence?.batchLoss,
    attack: defence,
    guard: guardOn
      ? { epsilon: args.eps, images: args['guard-images'], checksPerEpoch: args['guard-checks'], collapseDrop: args['guard-drop'] }
      : undefined,
  };
  validateTrainConfig(config);
  assertWritableDir(config.out, 'the model');
  console.log(
    `training ${config.arch} on ${dataset.name} (${Math.min(config.limit ?? Infinity, dataset.train.count)} images of ${dataset.shape.join('×')}, ${dataset.classes} classes) ` +
      `for ${config.epochs} epoch(s), ${defence ? `${args.adversarial} ε ${args.eps} α ${defence.stepSize().toFixed(4)}` : 'no defence'}, ` +
      `${config.schedule} lr ${config.learningRate}, batch ${config.batchSize}${config.guard ? ', overfitting guard on' : ''}${config.weightAverage ? `, weight average (decay ${config.weightAverage})` : ''}, on ${describeBackend(info)}`,
  );
  let barOpen = false;
  const bar = progressBar('{label} [{bar}] {value}/{total} batches | {stats} | ETA {eta_formatted}');
  const metadata = await trainVictim(
    {
      ...config,
      onResume: ({ epoch, batch, batches }) => console.log(`resuming from the checkpoint at epoch ${epoch + 1}, batch ${batch} of ${batches}`),
      onGuard: (r) =>
        console.log(
          `  guard at epoch ${r.epoch.toFixed(2)}: PGD accuracy ${pct(r.robustAccuracy)}, clean ${pct(r.cleanAccuracy)}` +
            (r.event ? ` — robust accuracy collapsed: ${r.event === 'stop' ? 'stopping' : `best weights restored, α lowered to ${defence?.stepSize().toFixed(4)}`}` : ''),
        ),
    },
    {
      onBatchEnd: ({ epoch, batch, batches, loss, accuracy, cleanAccuracy }) => {
        // A resumed run starts mid-epoch: its first batch opens the bar too.
        if (!barOpen) bar.start(batches, `epoch ${epoch + 1}/${config.epochs}`);
        barOpen = true;
        const robustPart = defence ? `clean ${cleanAccuracy === undefined ? '–' : pct(cleanAccuracy)} adversarial ${pct(accuracy)}` : `acc ${pct(accuracy)}`;
        if (batch % 10 === 0 || batch === batches) bar.update(batch, { stats: `loss ${loss.toFixed(4)} ${robustPart}` });
        if (batch === batches) {
          bar.stop();
          barOpen = false;
        }
      },
      onEpochEnd: ({ epoch, loss, accuracy, imagesPerSecond }) =>
        console.log(`epoch ${epoch + 1}: loss ${loss.toFixed(4)}, train accuracy${defence ? ' (on the attacked batches)' : ''} ${pct(accuracy)}, ${Math.round(imagesPerSecond)} images/s`),
    },
  );
  console.log(`test accuracy ${Number(metadata.testAccuracy).toFixed(4)} in ${metadata.durationSeconds} s; saved to ${config.out}`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
