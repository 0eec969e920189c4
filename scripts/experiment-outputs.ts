/**
 * Experiment: what each answer gives away. The same victim model served with each output policy
 * (`label`, `topk:1`, `topk:3`, `scores`, `scores --round 2`), and against each: the default campaign
 * (FGSM, TI 5, paper-cnn; untargeted at ε 0.3 only, no boundary measure) at two query budgets, using what
 * the policy gives (threat label, topk or scores: distillation), and the query attack on the victim itself
 * (RayS from labels, Square Attack from probabilities) at ε 0.3. Writes outputs.json, outputs.md (the
 * table and the issue's goals, met or not) and outputs.svg + outputs.vl.json (the chart) in --out.
 *
 * Every run is a run folder under --out: a finished one is kept, an interrupted one resumed, so running
 * the experiment again pays nothing twice. `--size tiny` is the same experiment at toy size (for tests).
 *
 *   npm run experiment:outputs -- [--model DIR] [--size full|tiny] [--out DIR] [--policies label scores …]
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { resolveConfig, type CampaignInput } from '../adversary/campaign/config.js';
import { readResults, type CampaignResults } from '../adversary/campaign/results.js';
import { fileRunStore } from '../adversary/run/store.js';
import { runCampaignCommand } from '../adversary/commands.js';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { QueryAttackResults } from '../adversary/query/run.js';
import { svgOf } from '../adversary/report/charts.js';
import { outputsChart } from '../adversary/report/outputs-chart.js';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine } from '../shared/cli.js';
import { backendOption } from '../shared/cli-options.js';
import { TransferlabError } from '../shared/errors.js';
import type { Threat } from '../shared/protocol/output.js';
import { provenance } from '../shared/versions.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { outputsTable, type OutputRow } from './outputs-table.js';

export interface Policy {
  name: string;
  /** The victim's flags for it. */
  args: string[];
  threat: Threat;
  attack: 'rays' | 'square';
}

export const POLICIES: Policy[] = [
  { name: 'label', args: [], threat: 'label', attack: 'rays' },
  { name: 'topk:1', args: ['--output', 'topk:1'], threat: 'topk', attack: 'square' },
  { name: 'topk:3', args: ['--output', 'topk:3'], threat: 'topk', attack: 'square' },
  { name: 'scores', args: ['--output', 'scores'], threat: 'scores', attack: 'square' },
  { name: 'scores --round 2', args: ['--output', 'scores', '--round', '2'], threat: 'scores', attack: 'square' },
];

/** The experiment's size: the issue's (full), or a toy one a test runs in seconds. */
export const SIZES = {
  // 150 · 2^(rounds − 1) attack queries: 6 rounds = 4,800, 4 rounds = 1,200.
  full: { campaign: {} as CampaignInput, seedSize: 150, budgets: [4800, 1200], evalSize: 1000, images: 200, queriesPerImage: 1000 },
  tiny: { campaign: { substitute: 'papernot-mlp', epochs: 1, shift: 0 } as CampaignInput, seedSize: 10, budgets: [40, 20], evalSize: 20, images: 4, queriesPerImage: 30 },
} as const;
export type Size = keyof typeof SIZES;

const EPSILON = 0.3;
const PARTS = ['campaigns', 'query'] as const;
type Part = (typeof PARTS)[number];
const slug = (name: string) => name.replace(/[^a-z0-9]+/gi, '-').replace(/-+$/, '');
const roundsFor = (budget: number, seedSize: number) => Math.round(Math.log2(budget / seedSize)) + 1;

async function campaign(policy: Policy, url: () => Promise<string>, dir: string, size: Size, budget: number, temperature?: number): Promise<CampaignResults> {
  const s = SIZES[size];
  const rounds = roundsFor(budget, s.seedSize);
  if (s.seedSize * 2 ** (rounds - 1) !== budget) throw new TransferlabError('invalid_arguments', `budget ${budget} is not ${s.seedSize}·2^k`);
  // A distillation temperature (topk/scores campaigns only) gets run folders of its own.
  const t = temperature !== undefined && policy.threat !== 'label' ? temperature : undefined;
  const out = join(dir, `campaign-${budget}${t === undefined ? '' : `-t${t}`}`);
  if (!existsSync(join(out, 'results.json'))) {
    const config = resolveConfig({ ...s.campaign, victim: await url(), out, threat: policy.threat, ...(t === undefined ? {} : { temperature: t }), seedSize: s.seedSize, rounds, evalSize: s.evalSize, epsilons: [EPSILON], targeted: false, boundary: { enabled: false } });
    await runCampaignCommand(config, out, existsSync(join(out, 'config.json')));
  }
  return readResults(fileRunStore(out)) as CampaignResults;
}

async function queryAttack(policy: Policy, url: () => Promise<string>, dir: string, size: Size): Promise<QueryAttackResults> {
  const s = SIZES[size];
  const out = join(dir, `query-${policy.attack}`);
  if (!existsSync(join(out, 'results.json'))) {
    const resumed = existsSync(join(out, 'config.json'));
    await runQueryAttackCommand(
      // RayS stops an image once within ε 0.3 (the only ε measured here; its search up to there is the same),
      // as Square stops at its first adversarial probe.
      resumed
        ? { resume: out, victim: await url() }
        : { victim: await url(), attack: policy.attack, images: s.images, queriesPerImage: s.queriesPerImage, seedSize: s.seedSize, ...(policy.attack === 'rays' ? { stopAt: EPSILON } : { epsilon: EPSILON }) },
      () => out,
    );
  }
  return readResults(fileRunStore(out)) as QueryAttackResults;
}

/** One policy's row: its victim started only when a run folder is unfinished, the campaigns and the query attack run (or read back). */
async function measurePolicy(policy: Policy, model: string, out: string, size: Size, only: Part[], temperature?: number): Promise<OutputRow> {
  const dir = join(out, slug(policy.name));
  mkdirSync(dir, { recursive: true });
  let victim: VictimProcess | undefined;
  const url = async () => {
    if (!victim) {
      victim = await spawnVictim({ args: ['--model', model, '--port', '0', '--rate-limit', '100000', '--log-level', 'warn', ...policy.args], stdio: 'inherit' });
      console.log(`victim for ${policy.name}: ${victim.url}`);
    }
    return victim.url;
  };
  console.log(`\n== ${policy.name} ==`);
  try {
    const campaigns = [];
    if (only.includes('campaigns')) for (const budget of SIZES[size].budgets) campaigns.push({ budget, results: await campaign(policy, url, dir, size, budget, temperature) });
    const query = only.includes('query') ? await queryAttack(policy, url, dir, size) : null;
    const at = (r: CampaignResults) => r.epsilons.find((p) => p.mode === 'untargeted' && Math.abs(p.epsilon - EPSILON) < 1e-9);
    const q = query?.epsilons.find((e) => Math.abs(e.epsilon - EPSILON) < 1e-9);
    return {
      policy: policy.name,
      threat: policy.threat,
      campaigns: campaigns.map(({ budget, results }) => ({
        budget,
        attackQueries: results.queries.attack,
        agreement: results.agreement,
        transfer: at(results)?.transferRate ?? null,
        misclassification: at(results)?.misclassificationRate ?? null,
        seconds: results.durationSeconds,
      })),
      query: query && {
        attack: policy.attack,
        images: query.images,
        queriesPerImage: query.config.queriesPerImage,
        success: q?.success ?? null,
        medianQueries: q?.medianQueries ?? null,
        attackQueries: query.queries.attack,
        seconds: query.durationSeconds,
      },
    };
  } finally {
    await victim?.stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      model: { type: 'string', default: 'models/victim', describe: 'the victim model folder, served once per output policy' },
      size: { choices: Object.keys(SIZES) as Size[], default: 'full' as Size, describe: 'full: the issue\'s sizes (4,800 / 1,200 queries, 1,000 images, 200 attacked ≤ 1,000 queries each); tiny: a toy run for tests' },
      out: { type: 'string', describe: 'experiment folder (default runs/experiment-outputs[-tiny])' },
      temperature: { type: 'number', describe: 'the topk/scores campaigns distil at this temperature T (default: the campaign default, 1); run folders of their own' },
      only: { type: 'array', choices: PARTS, default: [...PARTS], describe: 'measure only the campaigns or only the query attacks (the table leaves the rest out)' },
      policies: { type: 'array', describe: `output policies to measure (default all): ${POLICIES.map((p) => `"${p.name}"`).join(', ')}` },
      backend: backendOption,
    })
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  const size = a.size as Size;
  const names = (a.policies ?? POLICIES.map((p) => p.name)).map(String);
  const unknown = names.filter((n) => !POLICIES.some((p) => p.name === n));
  if (unknown.length) throw new TransferlabError('invalid_arguments', `unknown output policy: ${unknown.join(', ')}; choose from ${POLICIES.map((p) => p.name).join(', ')}`);
  const out = a.out ?? join('runs', `experiment-outputs${size === 'full' ? '' : `-${size}`}`);
  const info = await initBackend(a.backend);
  console.log(`experiment outputs (${size}) on ${describeBackend(info)} → ${out}`);
  const rows: OutputRow[] = [];
  const s = SIZES[size];
  const only = (a.only as Part[]).filter((p) => PARTS.includes(p));
  const budgets = only.includes('campaigns') ? s.budgets : [];
  const meta = { ...provenance(1), size, model: a.model, epsilon: EPSILON, budgets: s.budgets, evalSize: s.evalSize, images: s.images, queriesPerImage: s.queriesPerImage };
  // The goals' policies first (label, scores), then the others; the table lists them in the order served.
  const order = (p: Policy) => (p.name === 'label' ? 0 : p.name === 'scores' ? 1 : 2);
  const chosen = POLICIES.filter((p) => names.includes(p.name)).sort((x, y) => order(x) - order(y));
  let table = '';
  for (const policy of chosen) {
    rows.push(await measurePolicy(policy, a.model, out, size, only, a.temperature));
    rows.sort((x, y) => POLICIES.findIndex((p) => p.name === x.policy) - POLICIES.findIndex((p) => p.name === y.policy));
    // Written after every policy, so an interrupted experiment leaves what it measured.
    writeFileSync(join(out, 'outputs.json'), JSON.stringify({ ...meta, rows }, null, 2) + '\n');
    table = outputsTable(rows, budgets);
    writeFileSync(join(out, 'outputs.md'), table);
  }
  const spec = outputsChart(rows, budgets);
  writeFileSync(join(out, 'outputs.vl.json'), JSON.stringify(spec, null, 2) + '\n');
  writeFileSync(join(out, 'outputs.svg'), await svgOf(spec));
  console.log(`\n${table}\nwrote ${join(out, 'outputs.md')}, outputs.json, outputs.svg`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
