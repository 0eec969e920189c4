/**
 * Each model's own nearest L∞ boundary, label-only: RayS run on the victim (through its label API,
 * paid as measurement queries) and on the substitute (locally, free) from the same images, with the
 * same seed and the same per-image budget. Measured along its own best direction rather than the
 * substitute's FGSM direction, it answers where the victim's boundary lies, not only how far the
 * attack's own ray must go. RayS's distances are upper bounds that shrink with its budget.
 */
import { distanceSummary, median, pearson, type Distance, type DistanceSummary } from '../../shared/statistics.js';
import { labelImages, type Model } from '../../shared/model/model.js';
import type { Labeler } from '../../shared/labeler.js';
import { runQueryAttack } from '../query/attack.js';
import type { ImageOutcome } from '../query/search.js';
import { TransferlabError } from '../../shared/errors.js';
import { onCut, type PartialMeasure } from '../run/measure-cut.js';
import { askNow, besideSubstitute, nextTurn } from './overlap.js';

export interface NearestBoundary {
  method: 'rays';
  images: number;
  queriesPerImage: number;
  /** L∞ distance to the nearest adversarial example RayS found, per image (null: none within budget). */
  victim: Distance[];
  substitute: Distance[];
  victimSummary: DistanceSummary;
  substituteSummary: DistanceSummary;
  /** Pearson r over the images where both have a distance. */
  pearson: number | null;
  /** Cosine between the two boundary points' perturbations (x_adv − x), per image. */
  cosine: (number | null)[];
  medianCosine: number | null;
  /** Average boundary distance per true class (RayS's ADBD), one per class; null for a class with no distance. */
  adbd: { victim: (number | null)[]; substitute: (number | null)[] };
  /** Victim queries paid, and probes asked (the difference was served from the answer cache). */
  queries: number;
  probes: number;
  /** Set when the key's budget cut RayS on the victim (allowPartial): every figure is over the `images` it finished. */
  partial?: PartialMeasure;
}

export interface NearestContext {
  images: Float32Array;
  count: number;
  truth: ArrayLike<number>;
  cleanVictim: ArrayLike<number>;
  substituteClean: ArrayLike<number>;
  substitute: Model;
  /** Paid victim labels (measurement), and what has been paid so far. */
  victim: Labeler;
  paid: () => number;
  seed: number;
  queriesPerImage: number;
  /** The victim's class count: adbd has one entry per class. */
  classes: number;
  /** A cut records the images RayS finished as partial instead of stopping the run. */
  allowPartial?: boolean;
}

function cosine(x: Float32Array, a: Float32Array | null, b: Float32Array | null, off: number): number | null {
  if (!a || !b) return null;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let p = 0; p < a.length; p++) {
    const da = a[p] - x[off + p];
    const db = b[p] - x[off + p];
    ab += da * db;
    aa += da * da;
    bb += db * db;
  }
  return aa === 0 || bb === 0 ? null : ab / Math.sqrt(aa * bb);
}

function perClassMean(d: Distance[], truth: ArrayLike<number>, classes: number): (number | null)[] {
  const sum = new Array<number>(classes).fill(0);
  const n = new Array<number>(classes).fill(0);
  d.forEach((v, i) => {
    if (v === null) return;
    sum[truth[i]] += v;
    n[truth[i]]++;
  });
  return sum.map((s, c) => (n[c] === 0 ? null : s / n[c]));
}

/**
 * The victim's and the substitute's searches in step: each time a victim round's request is on its way, one
 * substitute round runs while the victim answers. Not freely side by side (each process's kernels would
 * then only share the two cores, and the substitute's rounds would hold the thread while the victim's answer
 * waits): one for one, the substitute's rounds fill the adversary's idle wait. When either side's searches
 * end, the other goes on alone.
 */
function inStep(victim: Labeler, substitute: Model) {
  let tokens = 0;
  let wake: (() => void) | null = null;
  let alone = false;
  const release = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  return {
    victim: (images: Float32Array, count: number): Promise<Int32Array> => {
      const answer = askNow(victim, images, count);
      tokens++;
      release();
      return answer;
    },
    substitute: async (images: Float32Array, count: number): Promise<Int32Array> => {
      while (tokens === 0 && !alone) await new Promise<void>((r) => (wake = r));
      if (tokens > 0) tokens--;
      await nextTurn(); // the victim's request goes out before the thread is busy
      return labelImages(substitute, images, count);
    },
    /** The victim's searches are over: the substitute's go on at their own pace. */
    victimDone: (): void => {
      alone = true;
      release();
    },
  };
}

export async function nearestBoundaries(ctx: NearestContext): Promise<NearestBoundary> {
  const settings = { attack: 'rays' as const, norm: 'linf' as const, queriesPerImage: ctx.queriesPerImage, seed: ctx.seed };
  const before = ctx.paid();
  // Every image's search is its own (RayS has no randomness): the substitute's searches on all the images,
  // run in step with the victim's, are the ones it would run after them.
  const step = inStep(ctx.victim, ctx.substitute);
  const besideRun = runQueryAttack(settings, { images: ctx.images, count: ctx.count, original: ctx.substituteClean }, step.substitute);
  const run = await besideSubstitute(
    () => runQueryAttack(settings, { images: ctx.images, count: ctx.count, original: ctx.cleanVictim }, step.victim).finally(step.victimDone),
    besideRun,
  );
  const queries = ctx.paid() - before;
  // An image whose search the key's budget stopped has a distance that is only where RayS had got to:
  // the run stops, or (allowPartial) the figures are over the images whose searches ended by themselves.
  const kept = run.outcomes.flatMap((o, i) => (o.end === 'key_budget' ? [] : [i]));
  let partial: PartialMeasure | undefined;
  if (run.stopped) {
    partial = onCut(
      new TransferlabError('budget_exhausted', 'the victim refused a round of RayS for the key\'s budget', 429),
      ctx.allowPartial ?? false, 'boundary.nearest', 'nearest L∞ boundary search (RayS)', kept.length, ctx.count,
    );
  }
  const size = ctx.images.length / ctx.count;
  const images = new Float32Array(kept.length * size);
  kept.forEach((i, j) => images.set(ctx.images.subarray(i * size, (i + 1) * size), j * size));
  const pick = <T>(a: ArrayLike<T>): T[] => kept.map((i) => a[i]);
  const onVictim = pick(run.outcomes);
  const onSubstitute = pick((await besideRun).outcomes);
  const truth = pick(ctx.truth);
  const dist = (o: ImageOutcome[]) => o.map((x) => x.linf);
  const victim = dist(onVictim);
  const substitute = dist(onSubstitute);
  const both = victim.flatMap((v, i) => (v !== null && substitute[i] !== null ? [[v, substitute[i] as number]] : []));
  const cos = onVictim.map((o, i) => cosine(images, o.image, onSubstitute[i].image, i * size));
  return {
    method: 'rays',
    images: kept.length,
    queriesPerImage: ctx.queriesPerImage,
    victim,
    substitute,
    victimSummary: distanceSummary(victim),
    substituteSummary: distanceSummary(substitute),
    pearson: pearson(both.map((p) => p[0]), both.map((p) => p[1])),
    cosine: cos,
    medianCosine: median(cos.filter((c): c is number => c !== null)),
    adbd: { victim: perClassMean(victim, truth, ctx.classes), substitute: perClassMean(substitute, truth, ctx.classes) },
    queries,
    probes: run.asked,
    ...(partial ? { partial } : {}),
  };
}
