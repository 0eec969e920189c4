/**
 * The one-command demo (`npm run demo`, the quick start): train-or-load the victim, start it as its own
 * process, run the white-box baseline and the default black-box campaign against it over HTTP,
 * stop the victim, print a summary and the report's path.
 *
 *   npm run demo -- [--out DIR] [--model PATH] [--dataset NAME|PATH] [--port N] [--quick]
 *
 * --model takes any model the victim serves (the project's folders, TF.js layers folders, ONNX files);
 * --dataset names the images the attacker draws its seed and evaluation sets from. With --dataset and
 * no --model, a default victim is trained on that dataset first (models/victim-<name>).
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine, commandName } from '../shared/cli.js';
import { backendOption } from '../shared/cli-options.js';
import { DATASET_HELP, DEFAULT_DATASET, loadDataset } from '../shared/datasets/index.js';
import { isTransferlabError } from '../shared/errors.js';
import { hasModel } from '../shared/model/model-io.js';
import { trainVictim, VICTIM_DEFAULTS } from '../victim/train/train.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { runCampaignCommand, runWhiteboxCommand } from '../adversary/commands.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { runStamp } from '../shared/stamp.js';

/**
 * The victim `--quick` trains when there is none: the default architecture on a slice of the training set,
 * one epoch — a first look in seconds, not the README's victim (that one is `transferlab train`).
 */
export const QUICK_VICTIM = { ...VICTIM_DEFAULTS, epochs: 1, limit: 6000, out: join('models', 'victim-quick') };

/** True when every file under `dir` is empty (or there is none). */
function holdsNothing(dir: string): boolean {
  if (!existsSync(dir)) return true;
  return readdirSync(dir, { withFileTypes: true }).every((e) => (e.isDirectory() ? holdsNothing(join(dir, e.name)) : statSync(join(dir, e.name)).size === 0));
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .scriptName(commandName('npm run demo --'))
    .options({
      model: { type: 'string', describe: 'the model to serve: a model folder (the project\'s or a TF.js layers folder) or an ONNX file (default models/victim, trained here when empty)' },
      dataset: { type: 'string', describe: `the attacker's images (seed and evaluation sets): ${DATASET_HELP.replace(/^image dataset: /, '')}` },
      out: { type: 'string', describe: 'run folder (default runs/demo-<time>)' },
      port: { type: 'number', default: 0, describe: 'victim port (0: any free port)' },
      quick: { type: 'boolean', default: false, describe: `a smaller campaign (fewer rounds and images) for a fast look; without a victim yet, a quick one (${QUICK_VICTIM.out}) is trained first` },
      backend: backendOption,
    })
    .example('$0 --quick', 'a smaller campaign against the default victim, for a fast look')
    .example('$0 --model model.onnx --dataset fashion-mnist', 'attack your own ONNX classifier with Fashion-MNIST images')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  const started = performance.now();
  const stamp = runStamp();
  const out = a.out ?? join('runs', `demo-${stamp}`);
  const outExisted = existsSync(out);
  const info = await initBackend(a.backend);
  console.log(`transferlab demo on ${describeBackend(info)}; run folder ${out}`);
  // Without --model, the demo's own victim: the default one, or one trained on --dataset.
  const dataset = a.dataset ? loadDataset(a.dataset) : undefined;
  // --quick on a fresh install: a small victim (trained in seconds) unless the default one is there already.
  const quickVictim = a.quick && !a.model && !dataset && !hasModel(VICTIM_DEFAULTS.out);
  const model = a.model ?? (dataset && dataset.name !== DEFAULT_DATASET ? join('models', `victim-${dataset.name}`) : quickVictim ? QUICK_VICTIM.out : VICTIM_DEFAULTS.out);
  if (quickVictim && !hasModel(model)) {
    console.log(`\n== 0. no victim yet: training a quick ${QUICK_VICTIM.arch} (${QUICK_VICTIM.limit} images, ${QUICK_VICTIM.epochs} epoch) into ${model}; \`transferlab train\` makes the full one ==`);
    const meta = await trainVictim(QUICK_VICTIM);
    console.log(`test accuracy ${Number(meta.testAccuracy).toFixed(4)} in ${meta.durationSeconds} s`);
  } else if (!a.model && !hasModel(model)) {
    // Trained here rather than by the victim process, which runs in the project's folder: the model lands
    // under the folder the demo was started in, as its run folder does.
    const r = VICTIM_DEFAULTS;
    console.log(
      `\n== 0. no victim for ${dataset?.name ?? DEFAULT_DATASET} yet: training the default ${r.arch} into ${model} (once; ` +
        `${r.epochs} epochs, batch ${r.batchSize}, ${r.schedule} rate peaking at ${r.learningRate}) ==`,
    );
    const meta = await trainVictim(
      { ...r, ...(a.dataset ? { dataset: a.dataset } : {}), out: model },
      { onEpochEnd: ({ epoch, loss, accuracy, imagesPerSecond }) => console.log(`epoch ${epoch + 1}/${r.epochs}: loss ${loss.toFixed(4)}, train accuracy ${accuracy.toFixed(4)}, ${Math.round(imagesPerSecond)} images/s`) },
    );
    console.log(`test accuracy ${Number(meta.testAccuracy).toFixed(4)} in ${meta.durationSeconds} s; saved to ${model}`);
  }

  let victim: VictimProcess | undefined;
  // Ctrl-C at any point: take the victim down with us, never leave it orphaned.
  const stopVictim = () => victim?.child.kill('SIGTERM');
  process.once('SIGINT', () => {
    stopVictim();
    process.exit(130);
  });
  process.once('SIGTERM', () => {
    stopVictim();
    process.exit(143);
  });
  process.once('exit', stopVictim);

  let starting: Promise<VictimProcess> | undefined;
  let finished = false;
  try {
    // The victim starts while the white-box baseline runs: its start-up (a Node process, the backend, the
    // model) is mostly one thread's work, which the baseline's two-thread kernels leave room for.
    console.log('\n== 1. victim: load and start as its own process (the white-box baseline runs meanwhile) ==');
    let t1 = 0;
    starting = spawnVictim({
      // The victim process runs in the project's folder: every path it gets is absolute.
      args: ['--model', resolve(model), '--no-train', '--port', String(a.port), '--log-level', 'warn', '--audit-log', resolve(out, 'victim', 'audit.jsonl'), '--ledger', resolve(out, 'victim', 'ledger.jsonl'), ...(a.backend ? ['--backend', a.backend] : [])],
      env: { TFJS_BACKEND: a.backend ?? process.env.TFJS_BACKEND ?? '' },
      stdio: 'inherit',
      onLine: (line) => console.log(`  [victim] ${line}`),
    }).then((v) => {
      victim = v;
      t1 = performance.now();
      return v;
    });
    // Awaited below; until then a failed start must not surface as an unhandled rejection.
    starting.catch(() => undefined);
    const settings = {
      ...(a.dataset ? { dataset: a.dataset } : {}),
      ...(a.quick ? { rounds: 4, evalSize: 300, epochs: 5, boundary: { images: 60, maps: 2, grid: 21, rays: { images: 30, queries: 100 } } } : {}),
    };

    console.log('\n== 2. white-box baseline (reads the victim model directly) ==');
    try {
      await runWhiteboxCommand(resolveConfig(settings), model, join(out, 'whitebox'));
    } catch (e) {
      // An ONNX model has no gradients to give: say so and go on with the black-box campaign.
      if (!isTransferlabError(e) || e.code !== 'whitebox_unsupported') {
        // A victim that cannot start either (the same model) is the failure to name.
        await starting;
        throw e;
      }
      console.log(`skipped: ${e.message}`);
    }
    const served = await starting;
    const config = resolveConfig({ victim: served.url, ...settings });

    console.log('\n== 3. black-box campaign over HTTP (labels only) ==');
    await runCampaignCommand({ ...config, out }, out, false);

    console.log('\n== 4. stop the victim ==');
    const code = await served.stop();
    console.log(`victim stopped (exit ${code})`);
    const total = (performance.now() - started) / 1000;
    console.log(`\ndemo finished in ${total.toFixed(0)} s (${((performance.now() - t1) / 1000).toFixed(0)} s after the victim was ready)`);
    console.log(`open ${join(out, 'report.html')} in a browser`);
    finished = true;
    return 0;
  } finally {
    // A victim still starting when something failed is taken down once it is up.
    await (victim ?? (await starting?.catch(() => undefined)))?.stop();
    // The victim opens its (still empty) logs in the run folder before it loads the model: a failed
    // demo leaves no folder behind unless something was written to it.
    if (!finished && !outExisted && holdsNothing(out)) rmSync(out, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) runMain(main);
