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
  const oracle = await createTargetOracle({ url: c.victim, apiKey: c.apiKey, format: c.format, target: c, dataset: c.dataset, onRetry: (i) => console.error(`target: ${i.reason}; retry ${i.attempt} in ${Math.round(i.delayMs)} ms`) });
  try {
    const info = await oracle.info();
    log(`${oracle.target.kind} target at ${oracle.target.url}: metadata read in ${Math.round(performance.now() - t0)} ms (free)`);
    log(`  input ${info.inputShape.join('×')} (H×W×C), ${info.classes} classes, answers ${info.output}, at most ${info.maxBatch} images a request${info.dataset ? `, dataset ${info.dataset}` : ''}`);
    const ds = attackerDataset(c.dataset, info, log);
    const n = Math.min(c.images, ds.test.count);
    const pixels = info.inputShape[0] * info.inputShape[1] * info.inputShape[2];
    const t1 = performance.now();
    const labels = await oracle.label(ds.test.images.subarray(0, n * pixels), n, 'measurement');
    const ms = performance.now() - t1;
    const truth = Array.from(ds.test.labels.subarray(0, n));
    const agree = truth.filter((l, i) => l === labels[i]).length;
    log(`  sent ${n} test images of ${ds.name} (${oracle.counts().measurement} paid queries) in ${Math.round(ms)} ms (${(ms / n).toFixed(1)} ms an image)`);
    log(`  labels:   ${Array.from(labels).join(' ')}`);
    log(`  expected: ${truth.join(' ')}  (${agree} of ${n} agree with ${ds.name}'s labels)`);
    const budget = await oracle.budget().catch(() => null);
    if (budget) log(`  budget: ${budget.used} used of ${budget.limit ?? 'unlimited'}`);
    return 0;
  } finally {
    await oracle.close();
  }
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
        .example('$0 target check --target-kind oip --victim http://127.0.0.1:8000 --model-name mnist', 'a KServe / Triton model')
        .example('$0 target check --target-kind tfserving --victim http://127.0.0.1:8501 --model-name mnist', 'a TF Serving model'),
    handler: async (a) => {
      const settings = inputFromFlags(checkSchema.shape, a) as CheckInput;
      done(await targetCheck({ ...settings, apiKey: apiKeyOrEnv(settings.apiKey) }));
    },
  };
}
