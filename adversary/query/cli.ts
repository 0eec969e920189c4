import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { describeBackend, initBackend } from '../../shared/engine/backend.js';
import { assertWritableDir } from '../../shared/fs-checks.js';
import { runStamp } from '../../shared/stamp.js';
import { QUERY_ATTACKS } from './attack.js';
import { runQueryAttackCommand } from './command.js';
import { exitOnInterrupt } from '../run/resume-hint.js';

const num = (v: unknown) => (v === undefined ? undefined : Number(v));

/** `query-attack`: RayS or HopSkipJump on the victim itself, through its label API. */
export function queryAttackCommand(done: (code: number) => void): CommandModule {
  return {
    command: 'query-attack',
    describe: 'decision-based attack on the victim itself (RayS or HopSkipJump), label queries only',
    builder: (y) =>
      y
        .options({
          attack: { type: 'string', describe: `attack: ${QUERY_ATTACKS.join(' | ')} (default rays)` },
          norm: { type: 'string', describe: 'distance the attack minimises: linf | l2 (default linf; RayS is linf only)' },
          victim: { type: 'string', describe: 'victim base URL (default http://127.0.0.1:8080)' },
          'api-key': { type: 'string', describe: 'API key for the victim (env TRANSFERLAB_API_KEY)' },
          format: { type: 'string', describe: 'wire format: uint8 | float32 (default uint8)' },
          images: { type: 'number', describe: 'evaluation images to attack: the campaign\'s first N (default 100)' },
          'queries-per-image': { type: 'number', describe: 'most label queries each image may spend (default 1000)' },
          targeted: { type: 'boolean', describe: 'aim at a class drawn per image (starting from a seed-set image of it) instead of any other class' },
          seed: { type: 'number', describe: 'seed for the image split, targets and the searches\' randomness (default 1)' },
          'seed-size': { type: 'number', describe: 'seed set of the campaign whose evaluation images are attacked, and the targeted pool (default 150)' },
          dataset: { type: 'string', describe: 'the attacker\'s images, as run\'s --dataset: a built-in name | a folder of IDX files | an ImageFolder tree of PNGs, of the victim\'s shape (default: the victim\'s dataset when it is built in, else mnist)' },
          epsilons: { type: 'array', describe: 'ε (L∞) at which success is counted (default 0.1 0.2 0.3)' },
          'stop-at': { type: 'number', describe: 'stop an image once its best distance is ≤ this (default: spend its whole budget)' },
          'match-rate': { type: 'number', describe: 'also report the queries per image needed for this misclassification rate at ε 0.3 (e.g. a campaign\'s)' },
          'allow-partial': { type: 'boolean', describe: 'start even when the planned queries exceed the key\'s known budget, and record searches the budget cuts short as partial instead of stopping (default false)' },
          resume: { type: 'string', describe: 'continue an interrupted query-attack run folder (its config.json is used; paid answers are not paid again)' },
          out: { type: 'string', describe: 'run folder (default runs/<time>-query-<attack>)' },
          backend: { type: 'string', describe: 'tensorflow | wasm | cpu (default: best available; env TFJS_BACKEND)' },
        })
        .example('$0 query-attack --attack rays --victim http://127.0.0.1:8080 --images 100 --queries-per-image 1000 --out runs/rays', 'RayS on 100 images')
        .example('$0 query-attack --attack hsja --norm linf --queries-per-image 1000 --out runs/hsja', 'HopSkipJump, L∞')
        .example('$0 query-attack --resume runs/rays', 'continue after budget_exhausted or an interruption'),
    handler: async (a) => {
      const attack = a.attack === undefined ? 'rays' : String(a.attack);
      const out = a.resume ?? a.out ?? join('runs', `${runStamp()}-query-${attack}`);
      assertWritableDir(String(out), 'the run folder');
      const info = await initBackend(a.backend as string | undefined);
      console.log(`adversary on ${describeBackend(info)}`);
      exitOnInterrupt('query-attack', String(out));
      done(
        await runQueryAttackCommand(
          {
            victim: a.victim as string | undefined,
            apiKey: (a['api-key'] as string | undefined) ?? process.env.TRANSFERLAB_API_KEY,
            format: a.format as string | undefined,
            attack: a.attack as string | undefined,
            norm: a.norm as string | undefined,
            targeted: a.targeted as boolean | undefined,
            images: num(a.images),
            queriesPerImage: num(a['queries-per-image']),
            seed: num(a.seed),
            seedSize: num(a['seed-size']),
            dataset: a.dataset as string | undefined,
            stopAt: num(a['stop-at']),
            matchRate: num(a['match-rate']),
            allowPartial: a['allow-partial'] as boolean | undefined,
            epsilons: Array.isArray(a.epsilons) ? a.epsilons.map(Number) : undefined,
            resume: a.resume as string | undefined,
            out: a.out as string | undefined,
          },
          () => String(out),
        ),
      );
    },
  };
}
