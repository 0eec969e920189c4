import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ATTACK_NAMES } from '../../shared/attacks/index.js';
import { ARCHITECTURES } from '../../shared/model/architectures.js';
import { BUILTIN_NAMES, isBuiltinDataset } from '../../shared/datasets/index.js';
import { BOTH_KEYS, DEFAULT_VICTIM_URL, HELP } from '../../shared/cli-options.js';
import { TransferlabError } from '../../shared/errors.js';
import { parseSettings } from '../../shared/settings-errors.js';
import { threatSchema } from '../../shared/protocol/output.js';
import { victimUrl } from '../oracle/victim-url.js';
import { targetSettingsShape } from '../targets/settings.js';
import { KEY_ORDERS } from '../oracle/client.js';

/**
 * A campaign's whole configuration. One schema gives the defaults, validates a YAML/JSON file
 * and the flags that override it, and lists every problem at once, before any query is spent.
 * Each field's `.describe()` is its --help line: the flags are generated from this schema
 * (shared/schema-flags.ts), and docs/campaign.md's table is checked against it.
 */
const unit = z.number().gt(0).lte(1);
const epochCount = z.number().int().min(1).max(200);
const architecture = z.string().refine((s) => ARCHITECTURES.includes(s), { message: `must be one of ${ARCHITECTURES.join(', ')}` });
/** Ensembles above this size cost more crafting time than they have been seen to return. */
export const MAX_MEMBERS = 5;

export const campaignSchema = z
  .strictObject({
    victim: victimUrl.default(DEFAULT_VICTIM_URL).describe(HELP.victim),
    apiKey: z.string().min(1).optional().describe(HELP.apiKey),
    keysFile: z.string().min(1).optional().describe('Sybil: a file of API keys, one a line, the requests are spread over (instead of --api-key)'),
    keyOrder: z.enum(KEY_ORDERS).default('round-robin').describe('which Sybil key carries each request: in turn, or one at random (seeded)'),
    format: z.enum(['uint8', 'float32']).default('uint8').describe('wire format of the pixels sent'),
    // How the model is reached (docs/targets.md): the kind of server and what it needs to be asked.
    ...targetSettingsShape,
    // Where the seed and evaluation images come from (its test part): a built-in name or a folder.
    // Unset: the victim's dataset when /v1/info names a built-in one, else mnist.
    dataset: z.string().min(1).optional().describe(`where the seed and evaluation images come from (its test part): ${BUILTIN_NAMES.join(' | ')} | a folder of IDX files | an ImageFolder tree of PNGs (default: the victim's dataset when it is built in, else mnist)`),
    seed: z.number().int().min(0).default(1).describe(HELP.seed),
    // label: Papernot's setting. topk / scores: the substitute is distilled from the victim's probabilities
    // (shared/model/distill.ts), with the same Jacobian augmentation and the same queries; refused before any
    // query when the victim answers less.
    threat: threatSchema.default('label').describe(`${threatSchema.description ?? 'threat model'}; topk/scores distil the substitute from the victim's probabilities; refused before any query when the victim gives less`),
    seedSize: z.number().int().min(10).max(5000).default(150).describe('seed set size: Papernot\'s initial labelled set, drawn from the test part'),
    rounds: z.number().int().min(1).max(12).default(6).describe('substitute rounds ρ'),
    lambda: unit.default(0.1).describe('Jacobian augmentation step λ'),
    tau: z.number().int().min(1).default(3).describe('flip λ\'s sign every τ rounds'),
    reservoir: z.number().int().min(1).optional().describe('reservoir sampling: augment at most κ points a round (default: off)'),
    // One architecture, or an ensemble: the first member is trained through the Papernot rounds (its
    // Jacobian picks the points to label); the others are fitted to the same labelled points, no extra query.
    // paper-cnn (the victim's layer shapes, no hidden dense layer) trains faster than substitute-cnn and
    // its FGSM examples transfer better; label smoothing 0.1 softens its gradients toward the victim's:
    // together they raised the MNIST victim's FGSM transfer by about 11 points at the same queries.
    substitute: z
      .union([architecture, z.array(architecture).min(1).max(MAX_MEMBERS)])
      .default('paper-cnn')
      .describe(`substitute architecture: ${ARCHITECTURES.join(', ')}; several make an ensemble fitted to the same labels, the first one choosing the points to label`),
    combine: z.enum(['logits', 'loss']).default('logits').describe('an ensemble is attacked on its members\' mean logits or mean losses'),
    // Earlier rounds' substitutes of the first member (round numbers, 1-based) join the ensemble: their
    // checkpoints are saved anyway, so they cost neither a query nor any training, only crafting time.
    snapshots: z.array(z.number().int().min(1)).max(MAX_MEMBERS).default([]).describe('earlier rounds of the first substitute (e.g. 5) to add to the ensemble: from their checkpoints, no training, no query'),
    labelSmoothing: z.number().min(0).lt(1).default(0.1).describe('label smoothing of the substitute\'s training targets (0 = off)'),
    temperature: z.number().gt(0).lte(100).default(1).describe('the substitute\'s training loss sees logits / T (threat topk/scores: the victim\'s probabilities are softened by the same T)'),
    // One number for every round, or a list per round (the last entry repeats): the early rounds
    // are small and cheap, the last ones hold most of the data and most of the training time.
    epochs: z
      .union([epochCount, z.array(epochCount).min(1).max(12)])
      .default([6, 6, 6, 6, 4, 2])
      .describe('substitute epochs per round: one number, or one per round, the last repeating'),
    shift: z.number().int().min(0).max(4).default(2).describe('train the substitute on its labelled images shifted by up to this many pixels; no extra queries (0 = off)'),
    batchSize: z.number().int().min(1).max(4096).default(128).describe('substitute batch size'),
    learningRate: z.number().gt(0).lt(1).default(0.001).describe('substitute Adam step size'),
    attack: z.enum(ATTACK_NAMES).default('fgsm').describe('the attack that crafts the adversarial examples'),
    steps: z.number().int().min(1).max(1000).default(10).describe('iterations of bim, pgd and mi-fgsm'),
    loss: z.enum(['ce', 'margin']).default('ce').describe('crafting loss on the logits: cross-entropy or the Carlini-Wagner margin'),
    diversity: z.number().min(0).max(1).default(0).describe('input diversity (DI): chance per gradient of a random resize-and-pad of the input; with mi-fgsm, MI-DI-FGSM (0 = off)'),
    diversityScale: z.number().gt(0).lte(1).default(0.86).describe('DI: smallest resize as a share of the image side'),
    diversitySamples: z.number().int().min(1).max(64).default(1).describe('DI: average each gradient over this many random draws'),
    craftTemperature: z.number().gt(0).lte(1000).default(1).describe('the crafting loss sees logits / T; for ce, T > 1 weighs the other classes more evenly'),
    // TI on by default: smoothing the gradient with a 5×5 Gaussian raised FGSM transfer by about 9 points,
    // at no query and almost no crafting time: a smoothed gradient is less specific to the substitute's own features.
    tiKernel: z
      .number()
      .int()
      .min(0)
      .max(15)
      .refine((k) => k <= 1 || k % 2 === 1, { message: 'must be 0 (off) or odd' })
      .default(5)
      .describe('translation invariance (TI): smooth the gradient with a Gaussian of this odd size (0 = off)'),
    craftLabel: z.enum(['substitute', 'oracle']).default('substitute').describe('untargeted attacks push away from the substitute\'s label or the victim\'s (oracle, paid)'),
    // 2: the iterative attacks craft half the images in a worker thread, both threads single-threaded
    // (the same images, faster on 2 cores: two single-threaded computations side by side keep their full
    // speed, while the wasm backend's own two threads gain much less). 1: one process.
    craftThreads: z
      .union([z.literal(1), z.literal(2)])
      .default(1)
      .describe('iterative attacks: 2 = craft half the images in a worker thread, each thread single-threaded (faster on 2 cores, the same images)'),
    // Targeted crafting doubles the sweep's cost; a search for the best untargeted setting may skip it.
    targeted: z.boolean().default(true).describe('also craft and score targeted attacks (--no-targeted skips them, halving the sweep)'),
    targetClass: z.union([z.enum(['random', 'next']), z.number().int().min(0)]).default('random').describe('the class targeted attacks aim at: random, the next one, or a class index'),
    evalSize: z.number().int().min(10).max(9000).default(1000).describe('held-out test images to measure on (disjoint from the seed set)'),
    epsilons: z.array(z.number().gt(0).lte(1)).min(1).default([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]).describe('the L∞ budgets ε of the sweep'),
    boundary: z
      .strictObject({
        enabled: z.boolean().default(true),
        images: z.number().int().min(0).max(5000).default(200),
        maps: z.number().int().min(0).max(20).default(4),
        grid: z.number().int().min(3).max(101).default(33),
        extent: z.number().gt(0).lte(1).default(0.5),
        // Each model's own nearest L∞ boundary by RayS: on the victim (paid, measurement) and the substitute.
        // 50 images: the report's 95 % intervals of the two medians are about ±0.015 wide and still tell
        // the two models apart, for half the time and victim queries of 100 (docs/results/boundary.md).
        rays: z
          .strictObject({
            images: z.number().int().min(0).max(5000).default(50),
            queries: z.number().int().min(1).max(100_000).default(200),
          })
          .prefault({}),
      })
      .prefault({})
      .describe('measure the boundary and draw the maps (--no-boundary skips them; a config file sets the rest)'),
    // A measure the key's budget cuts short is recorded as partial (images measured of planned) instead
    // of stopping the run; and the campaign starts even when its planned cost exceeds the known budget.
    allowPartial: z
      .boolean()
      .default(false)
      .describe('start even when the planned query cost exceeds the key\'s known budget, and record a measure the budget cuts short as partial instead of stopping'),
    out: z.string().optional().describe(`${HELP.out} (default: runs/<time>-<substitute>-<attack>)`),
  })
  .superRefine((c, ctx) => {
    if (c.keysFile !== undefined && c.apiKey !== undefined) ctx.addIssue({ code: 'custom', path: ['keysFile'], message: BOTH_KEYS });
    const late = c.snapshots.filter((r) => r >= c.rounds);
    if (late.length) ctx.addIssue({ code: 'custom', path: ['snapshots'], message: `must be earlier rounds than the last (1..${c.rounds - 1}); got ${late.join(', ')}` });
    if (new Set(c.snapshots).size !== c.snapshots.length) ctx.addIssue({ code: 'custom', path: ['snapshots'], message: 'must not repeat a round' });
    const size = substituteMembers(c).length + c.snapshots.length;
    if (size > MAX_MEMBERS) ctx.addIssue({ code: 'custom', path: ['snapshots'], message: `members and snapshots together must be ≤ ${MAX_MEMBERS} (got ${size})` });
    // The built-in datasets hold 10,000 test images; a folder's count is checked when it is loaded,
    // still before any query is sent.
    if ((c.dataset === undefined || isBuiltinDataset(c.dataset)) && c.seedSize + c.evalSize > 10_000) {
      ctx.addIssue({ code: 'custom', path: ['evalSize'], message: `seedSize + evalSize must be ≤ 10000 test images (got ${c.seedSize + c.evalSize})` });
    }
  });

export type CampaignConfig = z.infer<typeof campaignSchema>;
export type CampaignInput = z.input<typeof campaignSchema>;

/** Validate and fill defaults; every problem is listed in one error, an unknown key with its path. */
export function resolveConfig(input: CampaignInput): CampaignConfig {
  return parseSettings(campaignSchema, input, 'campaign settings');
}

/** A YAML or JSON config file (JSON is YAML, so one parser reads both). */
export function readConfigFile(path: string): CampaignInput {
  if (!existsSync(path)) throw new TransferlabError('config_missing', `config file not found: ${path}`);
  let data: unknown;
  try {
    data = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TransferlabError('config_unreadable', `cannot parse ${path}: ${(e as Error).message}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new TransferlabError('invalid_config', `${path} must hold a mapping of settings`);
  }
  return data as CampaignInput;
}

/** Flags override the file; undefined flags leave the file's value alone. */
export function mergeConfig(file: CampaignInput, flags: Partial<CampaignInput>): CampaignInput {
  const merged: Record<string, unknown> = { ...file };
  const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  // A nested flag (--no-boundary) sets one key of the file's mapping and keeps the rest, so a typo
  // there is still refused rather than dropped.
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) merged[k] = isMapping(v) && isMapping(merged[k]) ? { ...merged[k], ...v } : v;
  return merged as CampaignInput;
}

/** λ for round r: Papernot's periodic step size, its sign flipped every τ rounds. */
export function lambdaForRound(c: Pick<CampaignConfig, 'lambda' | 'tau'>, round: number): number {
  return Math.floor(round / c.tau) % 2 === 0 ? c.lambda : -c.lambda;
}

/** Substitute epochs in round r (0-based). */
export function epochsForRound(c: Pick<CampaignConfig, 'epochs'>, round: number): number {
  return typeof c.epochs === 'number' ? c.epochs : c.epochs[Math.min(round, c.epochs.length - 1)];
}

/** The substitute's members (one architecture is an ensemble of one). */
export function substituteMembers(c: Pick<CampaignConfig, 'substitute'>): string[] {
  return typeof c.substitute === 'string' ? [c.substitute] : c.substitute;
}
