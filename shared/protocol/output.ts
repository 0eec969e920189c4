/**
 * What an answer may carry, on both sides of the wire. The victim's output policy says what it gives
 * away (`label`: the top-1 class only; `topk:K`: the K best classes with their probabilities;
 * `scores`: every class's probability), optionally rounded to D decimals. The adversary's threat model
 * says what a campaign may use (`label`, `topk`, `scores`); a campaign asking for more than the
 * victim or target gives is refused before any query is paid, and whatever an endpoint returns is
 * reduced to the threat model before it reaches the attack code, the cache or the run folder.
 */
import { z } from 'zod';
import { TransferlabError } from '../errors.js';

export type OutputPolicy = { kind: 'label' } | { kind: 'topk'; k: number } | { kind: 'scores' };

/** The policy as the victim's flag and /v1/info spell it: `label`, `topk:K` (K ≥ 1) or `scores`. */
export const OUTPUT_PATTERN = /^(label|scores|topk:[1-9]\d*)$/;
export const outputSchema = z
  .string()
  .regex(OUTPUT_PATTERN, 'output must be label, topk:K (K ≥ 1) or scores')
  .describe('what each answer carries: label (top-1 only), topk:K (the K best classes with probabilities) or scores (every class)');

export function parseOutputPolicy(text: string): OutputPolicy {
  const m = OUTPUT_PATTERN.exec(text.trim());
  if (!m) throw new TransferlabError('bad_output_policy', `output policy "${text}" is not one of label, topk:K (K ≥ 1), scores`);
  if (m[1] === 'label' || m[1] === 'scores') return { kind: m[1] };
  return { kind: 'topk', k: Number(m[1].slice(5)) };
}

export const formatOutputPolicy = (p: OutputPolicy): string => (p.kind === 'topk' ? `topk:${p.k}` : p.kind);

export const THREATS = ['label', 'topk', 'scores'] as const;
export type Threat = (typeof THREATS)[number];
export const threatSchema = z.enum(THREATS).describe('what the campaign may use of each answer: label (top-1 only), topk (the K best classes with probabilities) or scores (every class)');

/** How much of the answer a policy or threat covers: label < topk < scores (top-k with K = classes is every score). */
function rank(p: OutputPolicy, classes: number): number {
  if (p.kind === 'label') return 0;
  if (p.kind === 'scores' || p.k >= classes) return 2;
  return 1;
}

/** Null when the policy gives what the threat asks for; otherwise why not, in words for people. */
export function threatProblem(threat: Threat, policy: OutputPolicy, classes: number): string | null {
  const need = THREATS.indexOf(threat);
  if (rank(policy, classes) >= need) return null;
  return `the campaign's threat model is "${threat}" but the victim answers "${formatOutputPolicy(policy)}" (it gives less than the campaign asks for)`;
}
