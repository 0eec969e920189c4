import { join } from 'node:path';
import yargs from 'yargs';
import { ATTACK_NAMES } from '../shared/attacks/index.js';
import { ARCHITECTURES } from '../shared/model/architectures.js';
import { BUILTIN_NAMES } from '../shared/datasets/index.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { failOnOneLine, isMain, runMain } from '../shared/cli.js';
import { TransferlabError } from '../shared/errors.js';
import { assertWritableDir } from '../shared/fs-checks.js';
import { readJson } from './run/store.js';
import { mergeConfig, readConfigFile, resolveConfig, substituteMembers, type CampaignConfig, type CampaignInput } from './campaign/config.js';
import { runCampaignCommand, runWhiteboxCommand } from './commands.js';
import { compareRuns, formatTable } from './report/compare.js';
import { runStamp } from '../shared/stamp.js';
import { sweepCommands } from './queue/cli.js';
import { queryAttackCommand } from './query/cli.js';
import { exitOnInterrupt } from './run/resume-hint.js';

const campaignFlags = {
  config: { type: 'string', describe: 'YAML or JSON file with campaign settings (flags override it)' },
  out: { type: 'string', describe: 'run folder (default runs/<time>-<substitute>-<attack>)' },
  dataset: {
    type: 'string',
    describe: `where the seed and evaluation images come from (its test part): ${BUILTIN_NAMES.join(' | ')} | a folder of IDX files | an ImageFolder tree of PNGs (default: the victim's dataset when it is built in, else mnist)`,
  },
  seed: { type: 'number', describe: 'seed for splits, initialisation, shuffles and targets (default 1)' },
  'eval-size': { type: 'number', describe: 'held-out test images to measure on (default 1000)' },
  epsilons: { type: 'array', describe: 'ε sweep (default 0.05 0.1 0.15 0.2 0.25 0.3 0.4 0.5)' },
  attack: { type: 'string', describe: `attack: ${ATTACK_NAMES.join(', ')} (default fgsm)` },
  steps: { type: 'number', describe: 'iterations of bim, pgd and mi-fgsm (default 10)' },
  loss: { type: 'string', describe: 'crafting loss on the logits: ce (cross-entropy) | margin (Carlini-Wagner) (default ce)' },
  diversity: { type: 'number', describe: 'input diversity (DI): chance per gradient of a random resize-and-pad of the input; with mi-fgsm, MI-DI-FGSM (default 0 = off)' },
  'diversity-scale': { type: 'number', describe: 'DI: smallest resize as a share of the image side (default 0.86)' },
  'craft-temperature': { type: 'number', describe: 'the crafting loss sees logits / T; for ce, T > 1 weighs the other classes more evenly (default 1)' },
  'diversity-samples': { type: 'number', describe: 'DI: average each gradient over this many random draws (default 1)' },
  'craft-threads': { type: 'number', describe: 'iterative attacks: 2 = craft half the images in a worker thread, each thread single-threaded (faster on 2 cores, the same images) (default 1)' },
  'ti-kernel': { type: 'number', describe: 'translation invariance (TI): smooth the gradient with a Gaussian of this odd size (default 5; 0 = off)' },
  target: { type: 'string', describe: 'targeted attacks aim at: random | next | a class index (default random)' },
  backend: { type: 'string', describe: 'tensorflow | wasm | cpu (default: best available; env TFJS_BACKEND)' },
} as const;

type Flags = Record<string, unknown>;
const num = (v: unknown) => (v === undefined ? undefined : Number(v));

/** CLI flags (kebab-case) → config keys; a flag not given stays undefined so the file's value holds. */
export function configFromFlags(a: Flags): Partial<CampaignInput> {
  const target = a.target === undefined ? undefined : /^\d+$/.test(String(a.target)) ? Number(a.target) : String(a.target);
  return {
    victim: a.victim as string | undefined,
    apiKey: a['api-key'] as string | undefined,
    format: a.format as CampaignInput['format'],
    dataset: a.dataset as string | undefined,
    seed: num(a.seed),
    seedSize: num(a['seed-size']),
    rounds: num(a.rounds),
    lambda: num(a.lambda),
    tau: num(a.tau),
    reservoir: num(a.reservoir),
    substitute: Array.isArray(a.substitute) ? (a.substitute.length === 1 ? String(a.substitute[0]) : a.substitute.map(String)) : (a.substitute as string | undefined),
    combine: a.combine as CampaignInput['combine'],
    snapshots: Array.isArray(a.snapshots) ? a.snapshots.map(Number) : undefined,
    craftThreads: num(a['craft-threads']) as CampaignInput['craftThreads'],
    labelSmoothing: num(a['label-smoothing']),
    temperature: num(a.temperature),
    epochs: Array.isArray(a.epochs) ? (a.epochs.length === 1 ? Number(a.epochs[0]) : a.epochs.map(Number)) : undefined,
    shift: num(a.shift),
    batchSize: num(a['batch-size']),
    learningRate: num(a['learning-rate']),
    attack: a.attack as CampaignInput['attack'],
    steps: num(a.steps),
    loss: a.loss as CampaignInput['loss'],
    diversity: num(a.diversity),
    diversityScale: num(a['diversity-scale']),
    diversitySamples: num(a['diversity-samples']),
    craftTemperature: num(a['craft-temperature']),
    tiKernel: num(a['ti-kernel']),
    craftLabel: a['craft-label'] as CampaignInput['craftLabel'],
    target: target as CampaignInput['target'],
    evalSize: num(a['eval-size']),
    epsilons: Array.isArray(a.epsilons) ? a.epsilons.map(Number) : undefined,
    targeted: a.targeted as boolean | undefined,
    ...(a.boundary === false ? { boundary: { enabled: false } } : {}),
    allowPartial: a['allow-partial'] as boolean | undefined,
    out: a.out as string | undefined,
  };
}

export function defaultRunDir(c: CampaignConfig, kind = 'campaign'): string {
  const stamp = runStamp();
  return join('runs', `${stamp}-${kind === 'whitebox' ? 'whitebox' : substituteMembers(c).join('+')}-${c.attack}`);
}

/** `base` sits under the file and the flags: defaults of one command that differ from a campaign's. */
function buildConfig(a: Flags, base: Partial<CampaignInput> = {}): CampaignConfig {
  if (a.resume) {
    const saved = readJson<CampaignInput>(join(String(a.resume), 'config.json'));
    return resolveConfig({ ...saved, ...(a['api-key'] ? { apiKey: String(a['api-key']) } : {}), ...(a['allow-partial'] !== undefined ? { allowPartial: Boolean(a['allow-partial']) } : {}) });
  }
  const file = a.config ? readConfigFile(String(a.config)) : {};
  return resolveConfig(mergeConfig({ ...base, ...file }, configFromFlags(a)));
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  await sweepCommands(
    yargs(argv)
      .scriptName('npm run adversary --')
      .usage('$0 <command> [options]\n\nThe adversary: knows only the victim\'s label API.')
      .command(
        'run',
        'black-box campaign: train a substitute from the victim\'s labels, attack it, measure transfer',
        (y) =>
          y.options({
            victim: { type: 'string', describe: 'victim base URL (default http://127.0.0.1:8080)' },
            'api-key': { type: 'string', describe: 'API key for the victim (env TRANSFERLAB_API_KEY)' },
            format: { type: 'string', describe: 'wire format: uint8 | float32 (default uint8)' },
            'seed-size': { type: 'number', describe: 'seed set size (default 150)' },
            rounds: { type: 'number', describe: 'substitute rounds ρ (default 6)' },
            lambda: { type: 'number', describe: 'Jacobian augmentation step λ (default 0.1)' },
            tau: { type: 'number', describe: 'flip λ\'s sign every τ rounds (default 3)' },
            reservoir: { type: 'number', describe: 'reservoir sampling: augment at most κ points a round' },
            substitute: {
              type: 'array',
              describe: `substitute architecture: ${ARCHITECTURES.join(', ')} (default paper-cnn); several make an ensemble fitted to the same labels, the first one choosing the points to label`,
            },
            snapshots: { type: 'array', describe: "earlier rounds of the first substitute (e.g. 5) to add to the ensemble: from their checkpoints, no training, no query (default none)" },
            combine: { type: 'string', describe: 'an ensemble is attacked on its members\' mean logits | mean losses: logits | loss (default logits)' },
            'label-smoothing': { type: 'number', describe: 'label smoothing of the substitute\'s training targets (default 0.1; 0 = off)' },
            temperature: { type: 'number', describe: 'the substitute\'s training loss sees logits / T (default 1)' },
            epochs: { type: 'array', describe: 'substitute epochs per round: one number, or one per round, the last repeating (default 6 6 6 6 4 2)' },
            shift: { type: 'number', describe: 'train the substitute on its labelled images shifted by up to this many pixels; no extra queries (default 2, 0 = off)' },
            'batch-size': { type: 'number', describe: 'substitute batch size (default 128)' },
            'learning-rate': { type: 'number', describe: 'substitute Adam step size (default 0.001)' },
            'craft-label': { type: 'string', describe: 'untargeted attacks push away from: substitute | oracle (default substitute)' },
            targeted: { type: 'boolean', describe: 'also craft and score targeted attacks (default true; --no-targeted skips them, halving the sweep)' },
            boundary: { type: 'boolean', describe: 'measure the boundary and draw the maps (default true; --no-boundary skips them)' },
            resume: { type: 'string', describe: 'continue an interrupted run folder (its config.json is used)' },
            'allow-partial': {
              type: 'boolean',
              describe: 'start even when the planned query cost exceeds the key\'s known budget, and record a measure the budget cuts short as partial instead of stopping (default false)',
            },
            ...campaignFlags,
          })
            .example('$0 run --victim http://127.0.0.1:8080', 'the default Papernot campaign')
            .example('$0 run --victim http://127.0.0.1:8080 --dataset fashion-mnist', 'seed and evaluation images from Fashion-MNIST')
            .example('$0 run --config scripts/configs/strongest.yaml --out runs/strongest', 'settings from a file (flags given too override it)')
            .example('$0 run --resume runs/20261127-101500-substitute-cnn-fgsm', 'finish an interrupted run'),
        async (a) => {
          const config = buildConfig({ ...a, 'api-key': a['api-key'] ?? process.env.TRANSFERLAB_API_KEY });
          const out = String(a.resume ?? config.out ?? defaultRunDir(config));
          assertWritableDir(out, 'the run folder');
          const info = await initBackend(a.backend);
          console.log(`adversary on ${describeBackend(info)}`);
          exitOnInterrupt('run', out);
          code = await runCampaignCommand({ ...config, out }, out, Boolean(a.resume));
        },
      )
      .command(
        'whitebox',
        'white-box baseline: attack the victim model directly, reading its files (the seed paper\'s setting)',
        (y) =>
          y.options({
            model: { type: 'string', default: 'models/victim', describe: 'victim model folder (its metadata names the dataset; --dataset overrides it)' },
            ...campaignFlags,
            out: { type: 'string', describe: 'run folder (default runs/<time>-whitebox-<attack>)' },
          }).example('$0 whitebox --model models/victim --epsilons 0.1 0.2 0.3', 'the seed paper\'s sweep'),
        async (a) => {
          // The seed paper's baseline is plain FGSM: TI stays off unless asked for.
          const config = buildConfig(a, { tiKernel: 0 });
          const out = String(config.out ?? defaultRunDir(config, 'whitebox'));
          assertWritableDir(out, 'the run folder');
          const info = await initBackend(a.backend);
          console.log(`white-box baseline on ${describeBackend(info)}`);
          code = await runWhiteboxCommand({ ...config, out }, String(a.model), out);
        },
      )
      .command(queryAttackCommand((c) => (code = c)))
      .command(
        'compare <dirs..>',
        'compare finished runs of any kind (campaign, white-box, query attack) or defence evaluations: key figures, differing settings, curves on shared axes',
        (y) =>
          y
            .positional('dirs', { type: 'string', array: true, describe: 'run folders (results.json) or defence evaluation folders (evaluation.json)' })
            .option('out', { type: 'string', describe: 'folder for compare.csv and compare.html' })
            .example('$0 compare runs/a runs/b --out runs/compare-ab', 'two campaigns side by side')
            .example('$0 compare runs/campaign runs/rays --out runs/compare-kinds', 'a transfer campaign beside a query attack'),
        async (a) => {
          const dirs = (a.dirs ?? []) as string[];
          if (dirs.length < 1) throw new TransferlabError('invalid_arguments', 'compare needs at least one run folder');
          const table = await compareRuns(dirs, a.out);
          console.log(formatTable(table.rows));
          console.log(`\nwrote ${table.csvPath} and ${table.htmlPath}`);
        },
    ),
  )
    .demandCommand(1, 'name a command: run, whitebox, query-attack, compare, sweep or worker')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  return code;
}

if (isMain(import.meta.url)) runMain(main);
