import { formatOutputPolicy, type OutputPolicy } from '../../shared/protocol/index.js';

/**
 * What an answer may carry under the victim's output policy (shared/protocol/output.ts), in one place
 * for every route: `/v1/predict`'s `top` or `scores`, and the rows the protocol routes (OIP, TF
 * Serving) answer in place of a model's output — one-hot under `label`, zero except the K best under
 * `topk:K`, every probability under `scores` — each probability rounded to `round` decimals when set.
 * Whatever a policy withholds never reaches a response body, on any route.
 */
export interface OutputSettings {
  policy: OutputPolicy;
  /** Decimals probabilities are rounded to (1..6); undefined: not rounded. */
  round?: number;
}

export const LABEL_ONLY: OutputSettings = { policy: { kind: 'label' } };

export const describeOutput = (o: OutputSettings): string =>
  `${formatOutputPolicy(o.policy)}${o.round !== undefined && o.policy.kind !== 'label' ? `, probabilities rounded to ${o.round} decimal(s)` : ''}`;

/** True when the policy lets probabilities out (topk or scores). */
export const givesProbabilities = (o: OutputSettings): boolean => o.policy.kind !== 'label';

/**
 * A probability as it goes on the wire: rounded to `round` decimals, or (not rounded) to the 9
 * significant digits that hold a float32 exactly, so bodies do not carry float64 noise.
 */
export function wireProbability(p: number, round: number | undefined): number {
  if (round === undefined) return Number(p.toPrecision(9));
  const scale = 10 ** round;
  return Math.round(p * scale) / scale;
}

/**
 * One image's classes by probability, most probable first — with the label (the argmax of the model's
 * own output) always first, so a float tie in the probabilities can never make the top class differ
 * from the label /v1/label answers; ties after it go to the lower class index.
 */
export function rankClasses(label: number, probs: Float32Array): number[] {
  const rest = Array.from({ length: probs.length }, (_, k) => k).filter((k) => k !== label);
  rest.sort((a, b) => probs[b] - probs[a] || a - b);
  return [label, ...rest];
}

/** `/v1/predict`'s field under a topk or scores policy: per image the K best {class, p}, or every class's p. */
export function predictField(
  o: OutputSettings,
  labels: Int32Array,
  probabilities: Float32Array,
): { top: { class: number; p: number }[][] } | { scores: number[][] } {
  const classes = probabilities.length / labels.length;
  const row = (i: number) => probabilities.subarray(i * classes, (i + 1) * classes);
  if (o.policy.kind === 'topk') {
    const k = Math.min(o.policy.k, classes);
    return { top: Array.from(labels, (label, i) => rankClasses(label, row(i)).slice(0, k).map((c) => ({ class: c, p: wireProbability(row(i)[c], o.round) }))) };
  }
  return { scores: Array.from(labels, (_, i) => Array.from(row(i), (p) => wireProbability(p, o.round))) };
}

/**
 * The model's output as a protocol route may answer it, count × classes, row-major: the one-hot label
 * (label), the K best probabilities and zeros (topk:K), or every probability (scores). Under `label`
 * no probability is needed, nor read.
 */
export function policyRows(o: OutputSettings, labels: Int32Array, classes: number, probabilities?: Float32Array): number[] {
  const out = new Array<number>(labels.length * classes).fill(0);
  if (o.policy.kind === 'label') {
    labels.forEach((label, i) => (out[i * classes + label] = 1));
    return out;
  }
  if (!probabilities) throw new Error(`the ${formatOutputPolicy(o.policy)} policy needs the model's probabilities`);
  for (let i = 0; i < labels.length; i++) {
    const row = probabilities.subarray(i * classes, (i + 1) * classes);
    const kept = o.policy.kind === 'topk' ? rankClasses(labels[i], row).slice(0, o.policy.k) : row.keys();
    for (const c of kept) out[i * classes + c] = wireProbability(row[c], o.round);
  }
  return out;
}
