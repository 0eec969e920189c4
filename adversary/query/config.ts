/**
 * The settings of `query-attack`, their cost and the per-image record of images.json: what the
 * query attack's steps (steps.ts) read and write.
 */
import { z } from 'zod';
import { isBuiltinDataset } from '../../shared/datasets/index.js';
import { BOTH_KEYS } from '../../shared/cli-options.js';
import { parseSettings } from '../../shared/settings-errors.js';
import { victimUrl } from '../oracle/victim-url.js';
import { targetSettingsShape } from '../targets/settings.js';
import type { Threat } from '../../shared/protocol/output.js';
import { KEY_ORDERS } from '../oracle/client.js';
import { planOf, type QueryPlan } from '../run/query-plan.js';
import type { QueryAttackRunResults } from '../campaign/results.js';
import { QUERY_ATTACKS } from './attack.js';
import { CURVE_EPSILONS } from './curves.js';

export const queryAttackSchema = z
  .strictObject({
    victim: victimUrl.default('http://127.0.0.1:8080'),
    apiKey: z.string().min(1).optional(),
    format: z.enum(['uint8', 'float32']).default('uint8'),
    ...targetSettingsShape,
    attack: z.enum(QUERY_ATTACKS).default('rays'),
    norm: z.enum(['linf', 'l2']).default('linf'),
    targeted: z.boolean().default(false),
    images: z.number().int().min(1).max(9000).default(100),
    queriesPerImage: z.number().int().min(1).max(100_000).default(1000),
    seed: z.number().int().min(0).default(1),
    /** Seed-set size of the campaign whose evaluation images are attacked (the same images, the same order). */
    seedSize: z.number().int().min(10).max(1000).default(150),
    /** The attacker's images, as the campaign's `dataset`: a built-in name or a folder; unset, the victim's own when /v1/info names a built-in one, else mnist. */
    dataset: z.string().min(1).optional(),
    epsilons: z.array(z.number().gt(0).lte(1)).min(1).default(CURVE_EPSILONS),
    stopAt: z.number().gt(0).lte(1).optional(),
    /** Square: the L∞ radius it searches within (on an 8-bit wire, rounded down to whole 1/255 steps). */
    epsilon: z.number().gt(0).lte(1).default(0.3),
    /** Square: the share of the image its first windows cover (p_init): the authors' MNIST setting 0.3 (their ImageNet one 0.05 needed twice the queries here). */
    pInit: z.number().gt(0).lte(1).default(0.3),
    matchRate: z.number().gt(0).lte(1).optional(),
    /** Start past a known budget too small for the plan, and record a search the budget cuts as partial instead of stopping. */
    allowPartial: z.boolean().default(false),
    /** Sybil: a file of API keys (one a line) the requests are spread over, instead of apiKey. */
    keysFile: z.string().min(1).optional(),
    keyOrder: z.enum(KEY_ORDERS).default('round-robin'),
    /** Most images per request (unset: the victim's maxBatch); 1 against a detector that refuses whole batches. */
    requestSize: z.number().int().min(1).max(10_000).optional(),
    /** Query blinding: each probe shifted, brightened and noised (within the ε left) before it is sent. */
    blinding: z.boolean().default(false),
    /** Adaptive rejection sampling: a refused probe is sent again with noise of a learned scale. */
    adaptive: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.keysFile !== undefined && c.apiKey !== undefined) ctx.addIssue({ code: 'custom', path: ['keysFile'], message: BOTH_KEYS });
    if (c.attack === 'rays' && c.norm !== 'linf') ctx.addIssue({ code: 'custom', path: ['norm'], message: 'RayS is an L∞ attack: norm must be linf' });
    if (c.attack === 'square' && c.norm !== 'linf') ctx.addIssue({ code: 'custom', path: ['norm'], message: 'Square Attack here is L∞: norm must be linf' });
    if (c.attack === 'square' && c.targeted) ctx.addIssue({ code: 'custom', path: ['targeted'], message: 'Square Attack here is untargeted only' });
    // Blinding and resampling shape RayS's and HopSkipJump's label probes; Square Attack's score queries do not take them.
    if (c.attack === 'square' && (c.blinding || c.adaptive)) ctx.addIssue({ code: 'custom', path: [c.blinding ? 'blinding' : 'adaptive'], message: 'blinding and adaptive apply to rays and hsja, not to Square Attack' });
    // The built-in datasets hold 10,000 test images; a folder's count is checked when it is loaded, before any query is paid.
    if ((c.dataset === undefined || isBuiltinDataset(c.dataset)) && c.seedSize + c.images > 10_000) {
      ctx.addIssue({ code: 'custom', path: ['images'], message: 'seedSize + images must be ≤ 10000 test images' });
    }
  });

export type QueryAttackConfig = z.infer<typeof queryAttackSchema>;

/** What the attack uses of each answer: Square reads scores (a top-k answer will do), RayS and HopSkipJump labels only. */
export const queryThreat = (c: Pick<QueryAttackConfig, 'attack'>): Threat => (c.attack === 'square' ? 'topk' : 'label');
export type QueryAttackInput = z.input<typeof queryAttackSchema>;

export function resolveQueryAttackConfig(input: QueryAttackInput): QueryAttackConfig {
  return parseSettings(queryAttackSchema, input, 'query-attack settings');
}

/** The attack's cost from its settings: every image's clean label, the targeted pool, and at most queriesPerImage probes each. */
export function queryAttackPlan(c: QueryAttackConfig, images = c.images): QueryPlan {
  return planOf([
    { purpose: 'attack', what: 'clean labels', queries: images, atMost: false },
    { purpose: 'attack', what: 'starting pool', queries: c.targeted ? c.seedSize : 0, atMost: false },
    { purpose: 'attack', what: `${c.attack} probes`, queries: images * c.queriesPerImage, atMost: true },
  ]);
}

export interface ImageRecord {
  /** Index among the attacker's dataset's test images (results.json's `dataset`). */
  testIndex: number;
  truth: number;
  clean: number;
  target: number | null;
  label: number | null;
  linf: number | null;
  l2: number | null;
  queries: number;
  end: string;
  trace: [number, number, number, number][];
  /** Probes the victim's detector refused, and the query count at the first (absent in older runs). */
  flagged?: number;
  firstFlagged?: number | null;
}

/** results.json of a query attack: its shape is the contract's (shared/protocol/results.ts). */
export type QueryAttackResults = QueryAttackRunResults;
