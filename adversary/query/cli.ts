import { join } from 'node:path';
import type { CommandModule, Options } from 'yargs';
import { backendOption, HELP } from '../../shared/cli-options.js';
import { describeBackend, initBackend } from '../../shared/engine/backend.js';
import { assertWritableDir } from '../../shared/fs-checks.js';
import { inputFromFlags, schemaOptions } from '../../shared/schema-flags.js';
import { runStamp } from '../../shared/stamp.js';
import { runQueryAttackCommand } from './command.js';
import { queryAttackSchema, type QueryAttackInput } from './run.js';
import { exitOnInterrupt } from '../run/resume-hint.js';
import { TARGET_HELP } from '../targets/settings.js';

/**
 * The help line of each query-attack setting: the flags themselves (type, default) are generated from
 * queryAttackSchema, and the compiler holds this map to the schema's keys.
 */
const QUERY_HELP = {
  attack: 'query attack: rays or hsja (labels), square (scores: needs a victim answering topk or scores)',
  norm: 'distance the attack minimises (RayS is linf only)',
  victim: HELP.victim,
  apiKey: HELP.apiKey,
  format: 'wire format of the pixels sent',
  ...TARGET_HELP,
  images: "evaluation images to attack: the campaign's first N",
  queriesPerImage: 'most queries each image may spend',
  targeted: 'aim at a class drawn per image (starting from a seed-set image of it) instead of any other class',
  seed: HELP.seed,
  seedSize: 'seed set of the campaign whose evaluation images are attacked, and the targeted pool (a small image folder needs a small one)',
  dataset: "the attacker's images, as run's --dataset: a built-in name, a folder of IDX files or an ImageFolder tree of PNGs, of the victim's shape (default: the victim's dataset)",
  epsilons: 'ε (L∞) at which success is counted',
  stopAt: 'stop an image once its best distance is ≤ this (default: spend its whole budget)',
  epsilon: 'square: the L∞ radius it searches within (rounded down to whole 1/255 steps on the uint8 wire)',
  pInit: "square: share of the image its first square windows cover (the paper's p_init)",
  matchRate: "also report the queries per image needed for this misclassification rate at ε 0.3 (e.g. a campaign's)",
  allowPartial: "start even when the planned queries exceed the key's known budget, and record searches the budget cuts short as partial instead of stopping",
  keysFile: 'Sybil: a file of API keys, one a line, the requests are spread over (instead of --api-key)',
  keyOrder: 'which Sybil key carries each request: in turn, or one at random (seeded)',
  requestSize: "most images per request (default: the victim's maxBatch); 1 against a detector with action reject, which refuses a whole batch",
  blinding: 'query blinding: each probe shifted ±2 px, brightened and noised within the ε 0.3 left before it is sent',
  adaptive: 'adaptive rejection sampling: a probe the detector refuses is sent again with noise of a scale learned from refusals',
} as const satisfies Record<keyof QueryAttackInput, string>;
export const QUERY_FLAG_KEYS = Object.keys(QUERY_HELP) as (keyof typeof QUERY_HELP)[];

export const queryAttackOptions: Record<string, Options> = {
  ...schemaOptions(queryAttackSchema.shape, { keys: QUERY_FLAG_KEYS, help: QUERY_HELP }),
  resume: { type: 'string', describe: 'continue an interrupted query-attack run folder (its config.json is used; paid answers are not paid again)' },
  out: { type: 'string', describe: `${HELP.out} (default: runs/<time>-query-<attack>)` },
  backend: backendOption,
};

/** `query-attack`: RayS or HopSkipJump on the victim itself, through its label API. */
export function queryAttackCommand(done: (code: number) => void): CommandModule {
  return {
    command: 'query-attack',
    describe: 'query attack on the victim itself: RayS or HopSkipJump from its labels, Square Attack from its scores',
    builder: (y) =>
      y
        .options(queryAttackOptions)
        .example('$0 query-attack --attack rays --victim http://127.0.0.1:8080 --images 100 --queries-per-image 1000 --out runs/rays', 'RayS on 100 images')
        .example('$0 query-attack --attack hsja --norm linf --queries-per-image 1000 --out runs/hsja', 'HopSkipJump, L∞')
        .example('$0 query-attack --attack square --epsilon 0.3 --queries-per-image 1000 --out runs/square', 'Square Attack from the scores of a victim serving --output scores')
        .example('$0 query-attack --keys-file keys.txt --request-size 1 --adaptive --out runs/sybil', 'spread over many keys, resampling refused probes')
        .example('$0 query-attack --resume runs/rays', 'continue after budget_exhausted or an interruption'),
    handler: async (a) => {
      const settings = inputFromFlags(queryAttackSchema.shape, a) as Partial<QueryAttackInput>;
      const out = String(a.resume ?? a.out ?? join('runs', `${runStamp()}-query-${settings.attack ?? 'rays'}`));
      assertWritableDir(out, 'the run folder');
      const info = await initBackend(a.backend as string | undefined);
      console.log(`adversary on ${describeBackend(info)}`);
      exitOnInterrupt('query-attack', out);
      const flags = { ...settings, resume: a.resume as string | undefined, out: a.out as string | undefined };
      done(await runQueryAttackCommand(flags, () => out, process.env));
    },
  };
}
