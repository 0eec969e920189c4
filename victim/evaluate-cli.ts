import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { readConfigFile, type CampaignInput } from '../adversary/config.js';
import { describeBackend, initBackend } from '../shared/backend.js';
import { isMain, runMain } from '../shared/cli.js';
import { TransferlabError } from '../shared/errors.js';
import { assertWritableDir } from '../shared/fs-checks.js';
import { hasModel } from '../shared/model-io.js';
import { provenance } from '../shared/versions.js';
import { campaignAgainst, evaluateModel, evaluationRows, formatTable, toCsv, type ModelEvaluation } from './evaluate.js';
import { runStamp } from '../shared/stamp.js';

/**
 * `npm run victim:evaluate -- --models models/victim models/victim-hardened [--epsilons 0.1 0.2 0.3] [--campaign]`:
 * undefended and defended victims side by side (victim/evaluate.ts says what is measured). Prints a
 * table and writes evaluation.json and evaluation.csv to --out.
 */
export async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .scriptName('npm run victim:evaluate --')
    .usage('$0 --models DIR [DIR ...] [options]\n\nCompare victim models: clean accuracy, white-box FGSM/PGD accuracy per ε, training time, and (--campaign) black-box transfer.')
    .options({
      models: { type: 'array', string: true, demandOption: true, describe: 'model folders to compare (e.g. models/victim models/victim-hardened)' },
      epsilons: { type: 'array', default: [0.1, 0.2, 0.3], describe: 'L∞ budgets of the attacks' },
      count: { type: 'number', default: 1000, describe: 'test images attacked white-box per ε (the campaign\'s evaluation set)' },
      'pgd-steps': { type: 'number', default: 10, describe: 'PGD iterations (step 2.5·ε/steps, random start)' },
      seed: { type: 'number', default: 1, describe: 'seed of the test-image split, PGD starts and the campaign' },
      campaign: { type: 'boolean', default: false, describe: 'also run a fresh default black-box campaign against each model (served as its own victim process)' },
      'campaign-config': { type: 'string', describe: 'YAML/JSON campaign settings overriding the defaults (with --campaign)' },
      out: { type: 'string', describe: 'folder for evaluation.json, evaluation.csv and campaign runs (default runs/evaluate-<time>)' },
      backend: { type: 'string', describe: 'tensorflow | wasm | cpu (default: best available; env TFJS_BACKEND)' },
    })
    .example('$0 --models models/victim models/victim-hardened', 'white-box comparison at ε 0.1 0.2 0.3')
    .example('$0 --models models/victim models/victim-hardened --campaign', 'plus the black-box transfer rate of a campaign against each')
    .strict()
    .help()
    .parseAsync();

  const models = args.models.map(String);
  const epsilons = args.epsilons.map(Number);
  const problems: string[] = [];
  for (const m of models) if (!hasModel(m)) problems.push(`no model in ${m} (train one with npm run victim:train -- --out ${m})`);
  if (epsilons.some((e) => !(e > 0 && e <= 1))) problems.push(`--epsilons must be in (0, 1] (got ${epsilons.join(' ')})`);
  if (!Number.isInteger(args.count) || args.count < 1 || args.count > 9850) problems.push(`--count must be an integer in 1..9850 (got ${args.count})`);
  if (!Number.isInteger(args['pgd-steps']) || args['pgd-steps'] < 1) problems.push(`--pgd-steps must be a positive integer (got ${args['pgd-steps']})`);
  if (problems.length) throw new TransferlabError('invalid_arguments', problems.join('; '));
  const overrides: CampaignInput | undefined = args['campaign-config'] ? readConfigFile(args['campaign-config']) : undefined;
  const stamp = runStamp();
  const out = args.out ?? join('runs', `evaluate-${stamp}`);
  assertWritableDir(out, 'the evaluation');
  mkdirSync(out, { recursive: true });

  const info = await initBackend(args.backend);
  console.log(`evaluating ${models.length} model(s) on ${describeBackend(info)}`);
  const evals: ModelEvaluation[] = [];
  for (const [i, dir] of models.entries()) {
    console.log(`\n${dir}: clean accuracy and white-box FGSM/PGD on ${args.count} test images`);
    const e = await evaluateModel(dir, { count: args.count, epsilons, pgdSteps: args['pgd-steps'], seed: args.seed }, (p) =>
      console.log(`  ${p.attack.padEnd(4)} ε ${p.epsilon}: accuracy ${p.accuracy === null ? '–' : p.accuracy.toFixed(4)}`),
    );
    if (args.campaign) {
      const runDir = join(out, `campaign-${i + 1}`);
      console.log(`  black-box campaign against ${dir} (run folder ${runDir})`);
      e.campaign = await campaignAgainst(dir, runDir, { epsilons, seed: args.seed, overrides, log: (line) => console.log(`    ${line}`) });
    }
    evals.push(e);
  }
  const rows = evaluationRows(evals, epsilons);
  console.log(`\n${formatTable(rows)}`);
  writeFileSync(
    join(out, 'evaluation.json'),
    JSON.stringify({ kind: 'evaluation', createdAt: new Date().toISOString(), ...provenance(args.seed), settings: { epsilons, count: args.count, pgdSteps: args['pgd-steps'], campaign: args.campaign }, models: evals }, null, 2) + '\n',
  );
  writeFileSync(join(out, 'evaluation.csv'), toCsv(rows));
  console.log(`\nwrote ${join(out, 'evaluation.json')} and ${join(out, 'evaluation.csv')}`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
