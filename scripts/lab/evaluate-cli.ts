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
import { ATTACK_RUNS, QUICK } from './evaluation-types.js';
import { campaignAgainst, EVALUATION_DEFAULTS, evaluateModel, type EvaluationOptions, type ModelEvaluation } from './evaluate.js';
import { writeEvaluationReport } from './evaluate-report.js';
import { attackLabel, describePoint, evaluationRows, formatTable, toCsv } from './evaluate-table.js';
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
      attacks: { type: 'array', string: true, choices: [...ATTACK_RUNS], default: d.attacks, describe: 'the attacks run (the worst case per image is over these)' },
      'apgd-steps': { type: 'number', default: d.apgdSteps, describe: 'APGD-CE and APGD-T iterations' },
      'apgd-targets': { type: 'number', default: d.apgdTargets, describe: "APGD-T's target classes per image (the top other classes)" },
      'square-queries': { type: 'number', default: d.squareQueries, describe: "Square Attack's queries per image (on the model's own scores)" },
      'rays-queries': { type: 'number', default: d.raysQueries, describe: "RayS's queries per image (on the model's own labels)" },
      cascade: { type: 'boolean', default: d.cascade, describe: 'APGD-T, Square and RayS attack only the images no attack before them fooled (AutoAttack\'s way; --no-cascade: every image, each with its own accuracy)' },
      sample: { type: 'string', choices: ['split', 'first'], default: 'split', describe: "which test images: the campaign's seeded evaluation split, or the first --images of the test set" },
      quick: { type: 'boolean', default: false, describe: `a quick look: ${QUICK.count} images, ${QUICK.restarts} PGD starts, ${QUICK.apgdTargets} APGD-T targets, Square ${QUICK.squareQueries} and RayS ${QUICK.raysQueries} queries (flags given explicitly still win)` },
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
    .example('$0 --models models/victim-robust --epsilons 0.3', 'the full ensemble at ε 0.3: the worst case per image over every attack')
    .example('$0 --models models/victim-robust --quick --attacks pgd apgd-ce apgd-t', 'a quick look with a subset of the attacks')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();

  // --quick shrinks whatever was not given explicitly on the command line.
  const given = (flag: string) => argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
  if (args.quick) {
    if (!given('images') && !given('count')) args.images = QUICK.count;
    if (!given('restarts')) args.restarts = QUICK.restarts;
    if (!given('apgd-targets')) args['apgd-targets'] = QUICK.apgdTargets;
    if (!given('square-queries')) args['square-queries'] = QUICK.squareQueries;
    if (!given('rays-queries')) args['rays-queries'] = QUICK.raysQueries;
  }
  const models = args.models.map(String);
  const epsilons = args.epsilons.map(Number);
  const problems: string[] = [];
  for (const m of models) if (!hasModel(m)) problems.push(`no model in ${m} (train one with npm run victim:train -- --out ${m})`);
  const budget = args['campaign-budget'];
  if (budget !== undefined && !(Number.isInteger(budget) && budget >= 0)) problems.push(`--campaign-budget must be an integer ≥ 0 (got ${budget})`);
  if (epsilons.some((e) => !(e > 0 && e <= 1))) problems.push(`--epsilons must be in (0, 1] (got ${epsilons.join(' ')})`);
  if (!Number.isInteger(args.images) || args.images < 1 || args.images > 9850) problems.push(`--images must be an integer in 1..9850 (got ${args.images})`);
  for (const k of ['pgd-steps', 'restarts', 'margin-restarts', 'apgd-steps', 'apgd-targets', 'square-queries', 'rays-queries'] as const) {
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
  const opts = { count: args.images, epsilons, pgdSteps: args['pgd-steps'], pgdStepSize: args['pgd-step-size'], restarts: args.restarts, marginRestarts: args['margin-restarts'], seed: args.seed,
    attacks: ATTACK_RUNS.filter((a) => (args.attacks as string[]).includes(a)), apgdSteps: args['apgd-steps'], apgdTargets: args['apgd-targets'],
    squareQueries: args['square-queries'], raysQueries: args['rays-queries'], cascade: args.cascade, sample: args.sample as 'split' | 'first', log: (line: string) => console.log(`    ${line}`),
    ...(args.dataset ? { dataset: args.dataset } : {}) };
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
      console.log(`  ${attackLabel(p.attack, opts).padEnd(28)} ε ${p.epsilon}: ${describePoint(p)} (${p.seconds} s)`),
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
  const settings = { epsilons, images: args.images, pgdSteps: opts.pgdSteps, pgdStepSize: opts.pgdStepSize, restarts: opts.restarts, marginRestarts: opts.marginRestarts, campaign: args.campaign, campaignConfig: args['campaign-config'] ?? null,
    attacks: opts.attacks, apgdSteps: opts.apgdSteps, apgdTargets: opts.apgdTargets, squareQueries: opts.squareQueries, raysQueries: opts.raysQueries, cascade: opts.cascade, quick: args.quick, sample: opts.sample };
  const evaluation = { kind: 'evaluation' as const, createdAt: new Date().toISOString(), ...provenance(args.seed), settings, models: evals };
  try {
    putEvaluationResults(fileRunStore(out), evaluation);
  } catch (e) {
    // An evaluation can take an hour: what it measured is kept even when the results contract refuses it.
    const kept = join(out, 'evaluation.rejected.json');
    writeFileAtomic(kept, JSON.stringify(evaluation, null, 2) + '\n');
    if (e instanceof TransferlabError) throw new TransferlabError(e.code, `${e.message}\nthe measured figures are kept, unchecked, in ${kept}`, e.status);
    throw e;
  }
  writeFileAtomic(join(out, 'evaluation.csv'), toCsv(rows));
  await writeEvaluationReport(join(out, 'evaluation.html'), evals, rows, out, opts);
  console.log(`\nwrote ${join(out, 'evaluation.json')}, ${join(out, 'evaluation.csv')} and ${join(out, 'evaluation.html')}`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
