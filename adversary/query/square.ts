/**
 * Square Attack (shared/attacks/square.ts) as a query attack on the victim: its scores through the
 * oracle (paid, cached like labels), each image's outcome in the form RayS and HopSkipJump leave
 * (search.ts `ImageOutcome`), so images.json, the curves and results.json read the same.
 *
 * The search's ε is taken in whole 8-bit steps below the asked one when the wire carries 8-bit images
 * (0.3 → 76/255): every probe x ± ε of an 8-bit image is then exactly what the victim decodes, and
 * nothing sent lies outside the ball. An image counts as adversarial when the victim's label of its
 * best probe differs from its clean label — that label comes from the answer cache, not paid again.
 *
 * A probe the victim's detector refused (403 query_rejected, answered by the oracle with no score) is
 * counted as RayS and HopSkipJump count theirs (search.ts): in its image's queries, as flagged, with
 * the query count at the first, and in the run's `flagged`. It never makes an image fooled, and an
 * image whose every probe was refused has no best probe to label: nothing is sent again for it.
 */
import { squareAttack, type Scorer } from '../../shared/attacks/square.js';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import type { AttackTargets } from './attack.js';
import { distances, quantiseInPlace, type ImageOutcome, type LockStepResult } from './search.js';

export interface SquareSettings {
  epsilon: number;
  queriesPerImage: number;
  pInit: number;
  seed: number;
  /** uint8: ε is rounded down to a multiple of 1/255. */
  format: 'uint8' | 'float32';
}

const isBudgetRefusal = (e: unknown) => e instanceof TransferlabError && e.code === 'budget_exhausted';

/** ε as the search uses it: in whole 8-bit steps on an 8-bit wire. */
export const searchEpsilon = (s: Pick<SquareSettings, 'epsilon' | 'format'>): number =>
  s.format === 'uint8' ? Math.floor(s.epsilon * 255 + 1e-9) / 255 : s.epsilon;

export async function runSquare(
  s: SquareSettings,
  t: AttackTargets,
  shape: readonly [number, number, number],
  score: Scorer,
  label: Labeler,
  onRound?: (round: number, asked: number, active: number) => void,
): Promise<LockStepResult> {
  if (t.targets) throw new TransferlabError('bad_attack_input', 'Square Attack here is untargeted only (the margin loss leaves the clean label)');
  const pixels = shape[0] * shape[1] * shape[2];
  const r = await squareAttack(t.images, t.original, t.count, score, {
    epsilon: searchEpsilon(s),
    shape,
    queriesPerImage: s.queriesPerImage,
    pInit: s.pInit,
    seed: s.seed,
    onIteration: onRound,
    stopOn: isBudgetRefusal,
  });
  // The best probe of every image the victim answered at least once (finite margin): each is in the
  // answer cache already. A refused probe is not cached: labelling it would send it again, uncounted.
  const asked = Array.from({ length: t.count }, (_, i) => i).filter((i) => r.queries[i] > 0 && Number.isFinite(r.margins[i]));
  const best = new Float32Array(asked.length * pixels);
  asked.forEach((i, j) => best.set(quantiseInPlace(r.images.slice(i * pixels, (i + 1) * pixels)), j * pixels));
  const labels = asked.length ? await label(best, asked.length) : new Int32Array(0);
  const outcomes: ImageOutcome[] = Array.from({ length: t.count }, (_, i): ImageOutcome => {
    const j = asked.indexOf(i);
    const cut = r.stopped !== null && r.margins[i] >= 0 && r.queries[i] < s.queriesPerImage;
    const end: ImageOutcome['end'] = cut ? 'key_budget' : r.margins[i] < 0 ? 'finished' : 'image_budget';
    const flags = { flagged: r.refused[i], firstFlagged: r.firstRefused[i] };
    // A best probe refused after all (REJECTED, < 0) is no adversarial example.
    if (j < 0 || labels[j] === t.original[i] || labels[j] < 0) return { image: null, label: null, linf: null, l2: null, queries: r.queries[i], trace: [], end, ...flags };
    const image = best.slice(j * pixels, (j + 1) * pixels);
    const d = distances(t.images.subarray(i * pixels, (i + 1) * pixels), image);
    return { image, label: labels[j], linf: d.linf, l2: d.l2, queries: r.queries[i], trace: [[r.queries[i], d.linf, d.l2, labels[j]]], end, ...flags };
  });
  const flagged = r.refused.reduce((a, b) => a + b, 0);
  return { outcomes, stopped: r.stopped ? 'budget_exhausted' : null, rounds: r.iterations + (r.asked > 0 ? 1 : 0), asked: r.asked, flagged, resamples: 0 };
}
