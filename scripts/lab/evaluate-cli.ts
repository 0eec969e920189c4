import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { readConfigFile, resolveConfig, type CampaignInput } from '../../adversary/campaign/config.js';
import { putEvaluationResults } from '../../adversary/campaign/results.js';
import { fileRunStore, writeFileAtomic } from '../../adversary/run/store.js';
import { describeBackend, initBackend } from '../../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine, commandName } from '../../shared/cli.js';
import { backendOption } from '../../shared/cli-options.js';
import { TransferlabError } from '../../shared/errors.js';
import { DATASET_HELP } from '../../shared/datasets/index.js';
import { assertWritableDir } from '../../shared/fs-checks.js';
import { hasModel } from '../../shared/model/model-io.js';
import { runStamp } from '../../shared/stamp.js';
import { provenance } from '../../shared/versions.js';
import { campaignAgainst, EVALUATION_DEFAULTS, evaluateModel, type EvaluationOptions, type ModelEvaluation } from './evaluate.js';
import { writeEvaluationReport } from './evaluate-report.js';
import { attackLabel, evaluationRows, formatTable, toCsv } from './evaluate-table.js';
import { describeVerdict, maskingCheck } from './masking.js';

/**
 * `npm run victim:evaluate -- --models models/victim models/victim-robust [--campaign]`: undefended and
 * defended victims side by side (evaluate.ts says what is measured). Prints a table with the masking
 * check's verdict and writes evaluation.json, evaluation.csv and evaluation.html (plots) to --out.
 */
export async function main(argv: string[]): Promise<number> {
  const d = EVALUATION_DEFAULTS;
  const args = await yargs(argv)
    .scriptName(commandName('npm run victim:evaluate --'))
    .usage(
      '$0 --models DIR [DIR ...] [options]\n\nCompare victim models: clean accuracy; white-box FGSM, PGD with random restarts (worst case per image) and ' +
        'PGD on the CW margin loss per ε; the gradient-masking check; training time; and (--campaign) black-box transfer.',
    )
    .options({
      models: { type: 'array', string: true, demandOption: true, describe: 'model folders to compare (e.g. models/victim models/victim-robust)' },
      epsilons: { type: 'array', default: d.epsilons, describe: 'L∞ budgets of the attacks' },
      images: { type: 'number', default: d.count, alias: 'count', describe: "test images attacked white-box per ε (the campaign's evaluation set)" },
      'pgd-steps': { type: 'number', default: d.pgdSteps, describe: 'PGD iterations' },
      'pgd-step-size': { type: 'number', default: d.pgdStepSize, describe: 'PGD step size' },
      restarts: { type: 'number', default: d.restarts, describe: 'random starts of PGD on cross-entropy; an image counts as robust only if all fail' },
      'margin-restarts': { type: 'number', default: d.marginRestarts, describe: 'random starts of PGD on the CW margin loss' },
      dataset: { type: 'string', describe: `test images to attack: ${DATASET_HELP}; default: the dataset each model's metadata names` },
      seed: { type: 'number', default: d.seed, describe: 'seed of the test-image split, PGD starts and the campaign' },
      campaign: { type: 'boolean', default: false, describe: 'also run a fresh default black-box campaign against each model (served as its own victim process)' },
      'campaign-budget': { type: 'number', describe: 'query budget of each served victim (with --campaign): the attacker\'s key; default unlimited' },
      'campaign-config': { type: 'string', describe: 'YAML/JSON campaign settings overriding the defaults (with --campaign), e.g. scripts/configs/strongest.yaml' },
      out: { type: 'string', describe: 'folder for evaluation.json, evaluation.csv, evaluation.html and campaign runs (default runs/evaluate-<time>)' },
      backend: backendOption,
    })
    .example('$0 --models models/victim models/victim-robust', 'white-box comparison at ε 0.1 0.2 0.3 with the masking check')
    .example('$0 --models models/victim models/victim-robust --campaign', 'plus the black-box transfer of a default campaign against each')
    .example('$0 --models models/victim-robust --images 200 --restarts 2', 'a quick look')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();

  const models = args.models.map(String);
  const epsilons = args.epsilons.map(Number);
  const problems: string[] = [];
  for (const m of models) if (!hasModel(m)) problems.push(`no model in ${m} (train one with npm run victim:train -- --out ${m})`);
  const budget = args['campaign-budget'];
  if (budget !== undefined && !(Number.isInteger(budget) && budget >= 0)) problems.push(`--campaign-budget must be an integer ≥ 0 (got ${budget})`);
  if (epsilons.some((e) => !(e > 0 && e <= 1))) problems.push(`--epsilons must be in (0, 1] (got ${epsilons.join(' ')})`);
  if (!Number.isInteger(args.images) || args.images < 1 || args.images > 9850) problems.push(`--images must be an integer in 1..9850 (got ${args.images})`);
  for (const k of ['pgd-steps', 'restarts', 'margin-restarts'] as const) {
    if (!Number.isInteger(args[k]) || args[k] < 1) problems.push(`--${k} must be a positive integer (got ${args[k]})`);
  }
  if (!(args['pgd-step-size'] > 0 && args['pgd-step-size'] <= 1)) problems.push(`--pgd-step-size must be in (0, 1] (got ${args['pgd-step-size']})`);
  if (problems.length) throw new TransferlabError('invalid_arguments', problems.join('; '));
  const overrides: CampaignInput | undefined = args['campaign-config'] ? readConfigFile(args['campaign-config']) : undefined;
  // Checked now, before any model is attacked: an unknown or misspelt setting stops here with its path.
  if (overrides) resolveConfig(overrides);
  const out = args.out ?? join('runs', `evaluate-${runStamp()}`);
  assertWritableDir(out, 'the evaluation');
  mkdirSync(out, { recursive: true });

  const info = await initBackend(args.backend);
  const opts = { count: args.images, epsilons, pgdSteps: args['pgd-steps'], pgdStepSize: args['pgd-step-size'], restarts: args.restarts, marginRestarts: args['margin-restarts'], seed: args.seed, ...(args.dataset ? { dataset: args.dataset } : {}) };
  console.log(`evaluating ${models.length} model(s) on ${describeBackend(info)}`);
  const evals: ModelEvaluation[] = [];
  for (const [i, dir] of models.entries()) {
    console.log(`\n${dir}: clean accuracy and white-box attacks on ${args.images} test images`);
    const progress: EvaluationOptions = {
      ...opts,
      onRestart: ({ epsilon, loss, run, runs, standing, total }) =>
        console.log(`    PGD-${opts.pgdSteps}${loss === 'margin' ? ' (margin)' : ''} ε ${epsilon}: start ${run}/${runs}, ${standing} of ${total} images still robust`),
    };
    const e = await evaluateModel(dir, progress, (p) =>
      console.log(`  ${attackLabel(p.attack, opts).padEnd(28)} ε ${p.epsilon}: accuracy ${p.accuracy === null ? '–' : p.accuracy.toFixed(4)} (${p.seconds} s)`),
    );
    if (args.campaign) {
      const runDir = join(out, `campaign-${i + 1}`);
      console.log(`  black-box campaign against ${dir} (run folder ${runDir})`);
      e.campaign = await campaignAgainst(dir, runDir, {
        epsilons, seed: args.seed, dataset: args.dataset, overrides, victimBudget: args['campaign-budget'], log: (line) => console.log(`    ${line}`),
      });
      for (const p of e.campaign.partial ?? []) console.log(`  PARTIAL: the campaign's ${p.measure} measured ${p.measured} of ${p.planned} ${p.unit} (the budget ran out)`);
      e.masking = maskingCheck(e);
    }
    console.log(`  ${describeVerdict(e.masking)}`);
    evals.push(e);
  }
  const rows = evaluationRows(evals, epsilons, opts);
  console.log(`\n${formatTable(rows)}`);
  for (const e of evals) if (e.masking.suspected) console.log(`\n${e.model}: ${describeVerdict(e.masking)}`);
  const settings = { epsilons, images: args.images, pgdSteps: opts.pgdSteps, pgdStepSize: opts.pgdStepSize, restarts: opts.restarts, marginRestarts: opts.marginRestarts, campaign: args.campaign, campaignConfig: args['campaign-config'] ?? null };
  putEvaluationResults(fileRunStore(out), { kind: 'evaluation', createdAt: new Date().toISOString(), ...provenance(args.seed), settings, models: evals });
  writeFileAtomic(join(out, 'evaluation.csv'), toCsv(rows));
  await writeEvaluationReport(join(out, 'evaluation.html'), evals, rows, out, opts);
  console.log(`\nwrote ${join(out, 'evaluation.json')}, ${join(out, 'evaluation.csv')} and ${join(out, 'evaluation.html')}`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
