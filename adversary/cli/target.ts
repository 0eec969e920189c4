/**
 * `target check`: before a campaign spends its budget on a deployed model, read the model's metadata
 * (free), send a handful of the attacker's own test images (paid: they are real queries), and print
 * what the attack will see — shape, classes, output policy, batch size — with the latency and the
 * labels beside the dataset's own, so a wrong model name, layout or output shows now, not mid-run.
 */
import type { CommandModule } from 'yargs';
import { z } from 'zod';
import { apiKeyOrEnv, DEFAULT_VICTIM_URL, HELP } from '../../shared/cli-options.js';
import { inputFromFlags, schemaOptions } from '../../shared/schema-flags.js';
import { parseSettings } from '../../shared/settings-errors.js';
import { victimUrl } from '../oracle/victim-url.js';
import { attackerDataset } from '../run/dataset-choice.js';
import { createTargetOracle } from '../targets/oracle.js';
import { targetSettingsShape } from '../targets/settings.js';
import type { Threat } from '../../shared/protocol/output.js';

const checkSchema = z.strictObject({
  victim: victimUrl.default(DEFAULT_VICTIM_URL).describe('the server\'s base URL'),
  apiKey: z.string().min(1).optional().describe(HELP.apiKey),
  format: z.enum(['uint8', 'float32']).default('uint8').describe('wire format of the pixels sent'),
  ...targetSettingsShape,
  dataset: z.string().min(1).optional().describe('where the test images come from: a built-in name or a folder (default: the model\'s dataset when it names a built-in one, else mnist)'),
  images: z.number().int().min(1).max(100).default(5).describe('test images to send (each is a paid query)'),
});
type CheckInput = z.input<typeof checkSchema>;

export async function targetCheck(input: CheckInput, log: (line: string) => void = console.log): Promise<number> {
  const c = parseSettings(checkSchema, input, 'target check settings');
  const t0 = performance.now();
  const open = (threat: Threat) => createTargetOracle({ url: c.victim, apiKey: c.apiKey, format: c.format, target: c, dataset: c.dataset, threat, onRetry: (i) => console.error(`target: ${i.reason}; retry ${i.attempt} in ${Math.round(i.delayMs)} ms`) });
  let oracle = await open('label');
  try {
    const info = await oracle.info();
    log(`${oracle.target.kind} target at ${oracle.target.url}: metadata read in ${Math.round(performance.now() - t0)} ms (free)`);
    log(`  input ${info.inputShape.join('×')} (H×W×C), ${info.classes} classes, answers ${info.output}, at most ${info.maxBatch} images a request${info.dataset ? `, dataset ${info.dataset}` : ''}`);
    const ds = attackerDataset(c.dataset, info, log);
    // Where the endpoint says it gives more than labels, the check looks at what its rows hold (nothing is written to disk).
    if (info.output !== 'label') {
      await oracle.close();
      oracle = await open(info.output === 'scores' ? 'scores' : 'topk');
    }
    const n = Math.min(c.images, ds.test.count);
    const pixels = info.inputShape[0] * info.inputShape[1] * info.inputShape[2];
    const x = ds.test.images.subarray(0, n * pixels);
    const t1 = performance.now();
    const scores = oracle.scores ? await oracle.scores(x, n, 'measurement') : undefined;
    const labels = await oracle.label(x, n, 'measurement');
    const ms = performance.now() - t1;
    const truth = Array.from(ds.test.labels.subarray(0, n));
    const agree = truth.filter((l, i) => l === labels[i]).length;
    log(`  sent ${n} test images of ${ds.name} (${oracle.counts().measurement} paid queries) in ${Math.round(ms)} ms (${(ms / n).toFixed(1)} ms an image)`);
    log(`  labels:   ${Array.from(labels).join(' ')}`);
    log(`  expected: ${truth.join(' ')}  (${agree} of ${n} agree with ${ds.name}'s labels)`);
    if (scores) log(`  rows: ${describeRows(scores, n, info.classes)}`);
    const budget = await oracle.budget().catch(() => null);
    if (budget) log(`  budget: ${budget.used} used of ${budget.limit ?? 'unlimited'}`);
    return 0;
  } finally {
    await oracle.close();
  }
}

/** What an endpoint's score rows give away: one-hot rows are labels only, whatever the output's shape says. */
function describeRows(scores: Float32Array, n: number, classes: number): string {
  let oneHot = 0, given = 0, top = 0;
  for (let i = 0; i < n; i++) {
    const row = Array.from(scores.subarray(i * classes, (i + 1) * classes)).map((v) => (Number.isNaN(v) ? 0 : v));
    const nonzero = row.filter((v) => v > 0).length;
    given += nonzero;
    if (nonzero === 1 && row.includes(1)) oneHot++;
    top += Math.max(...row);
  }
  if (oneHot === n) return 'one-hot (the endpoint gives the label only; a topk or scores campaign would learn nothing more)';
  return `probabilities, ${(given / n).toFixed(1)} classes given an image on average, mean top probability ${(top / n).toFixed(3)}`;
}

const checkOptions = schemaOptions(checkSchema.shape);

/** `target check`: metadata and a handful of labels from a target, before any campaign. */
export function targetCommand(done: (code: number) => void): CommandModule {
  return {
    command: 'target <action>',
    describe: 'check how the adversary reaches a deployed model (target check)',
    builder: (y) =>
      y
        .positional('action', { type: 'string', choices: ['check'], describe: 'check: read the metadata and label a few test images (paid)' })
        .options(checkOptions)
        .example('$0 target check --target oip --victim http://127.0.0.1:8000 --model-name mnist', 'a KServe / Triton model')
        .example('$0 target check --target tfserving --victim http://127.0.0.1:8501 --model-name mnist', 'a TF Serving model'),
    handler: async (a) => {
      const settings = inputFromFlags(checkSchema.shape, a) as CheckInput;
      done(await targetCheck({ ...settings, apiKey: apiKeyOrEnv(settings.apiKey) }));
    },
  };
}
