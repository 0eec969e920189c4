import { inputGradientSign } from '../../shared/attacks/index.js';
import { sweepSettings } from './transfer.js';
import { EPSILON_STEP, flipDistances, planeGrid } from '../../shared/boundary.js';
import type { Labeler } from '../../shared/labeler.js';
import { agreement, type Rate } from '../../shared/metrics.js';
import { boundaryGap, type BoundaryGap, type Distance } from '../../shared/statistics.js';
import { imagesTensor, subset } from '../../shared/datasets/images.js';
import { pixelCount, type ImageSet } from '../../shared/datasets/types.js';
import { labelImages, type Model } from '../../shared/model/model.js';
import { createRng } from '../../shared/random.js';
import type { CampaignConfig } from './config.js';
import type { LabelOracle } from '../oracle/oracle.js';
import { chooseRows } from '../report/pictures.js';
import { nearestBoundaries, type NearestBoundary } from './boundary-nearest.js';
import { onCut, type PartialMeasure } from '../run/measure-cut.js';
import { askNow, besideSubstitute, nextTurn, turnTakingLabeler } from './overlap.js';

/**
 * Where the victim's decision boundary lies relative to the substitute's, measured on
 * the evaluation images along the direction the attack actually uses: the substitute's FGSM sign
 * direction for the crafting label (config.craftLabel), as in transfer.ts. All victim queries are
 * tagged 'measurement'; what they cost is read off the oracle's ledger (cache hits are free).
 * It returns data only: the campaign's report step draws the maps (run-pictures.ts).
 */
export interface BoundaryMap {
  /** Position of the image in the evaluation set. */
  index: number;
  trueLabel: number;
  substituteLabel: number;
  victimLabel: number;
  grid: number;
  extent: number;
  /** grid × grid labels in raster order: row 0 is b = +extent (up = +d2), column 0 is a = −extent (right = +d1). */
  substituteLabels: number[];
  victimLabels: number[];
  /** Share of grid points where the two labels agree. */
  agreement: Rate;
  /** Victim queries this map cost. */
  queries: number;
  /** The PNG, relative to the run folder, and a one-line caption for it. */
  image: string;
  caption: string;
}

/** A map as measured, before its picture is drawn. */
export type MeasuredMap = Omit<BoundaryMap, 'image'>;
/** What measureBoundary finds; the report step adds each map's picture to make BoundaryResults. */
export type MeasuredBoundary = Omit<BoundaryResults, 'maps'> & { maps: MeasuredMap[] };

export interface BoundaryResults {
  direction: 'substitute-fgsm-sign';
  craftLabel: CampaignConfig['craftLabel'];
  /** Largest ε searched; images with no flip up to it have a null distance. */
  epsilonMax: number;
  precision: number;
  /** The first `images` evaluation images were bisected. */
  images: number;
  truth: number[];
  substituteDistances: Distance[];
  victimDistances: Distance[];
  /** The victim's label just past its boundary (null when it never flips). */
  victimFlippedTo: (number | null)[];
  substituteFlippedTo: (number | null)[];
  stats: BoundaryGap;
  maps: BoundaryMap[];
  /** Agreement over all map points pooled (null without maps). */
  mapAgreement: Rate;
  /** Each model's own nearest L∞ boundary found by RayS on the first images (absent in older runs). */
  nearest?: NearestBoundary | null;
  /** Victim queries paid, by use. */
  queries: { distances: number; maps: number; nearest?: number };
  /** Images asked of the victim, by use (exceeds `queries` by the answers the cache served). */
  probes: { distances: number; maps: number };
  /** Measures the key's budget cut short (allowPartial only; without it the run stops instead). */
  partial?: PartialMeasure[];
}

export interface BoundaryContext {
  config: CampaignConfig;
  substitute: Model;
  evalSet: ImageSet;
  /** Class names, for captions (index strings when the dataset has none). */
  classNames: string[];
  cleanVictim: Int32Array;
  substituteClean: Int32Array;
  oracle: LabelOracle;
  log: (line: string) => void;
}

/** The boundary is searched over the whole pixel range: ε = 1 can reach any image from any other. */
const EPSILON_MAX = 1;
/** Separates the map seeds from the other uses of config.seed. */
const MAP_SEED_SALT = 0x6d61;

/** The substitute's FGSM sign direction for the given rows of the evaluation set. */
function directions(ctx: BoundaryContext, rows: number[], craft: Int32Array): Float32Array {
  const part = subset(ctx.evalSet, rows);
  const x = imagesTensor(part.images, part.count, part.shape);
  // The same gradient as the sweep's FGSM (its loss, DI and TI), so the direction is the attack's own.
  const d = inputGradientSign(ctx.substitute, x, Int32Array.from(rows, (i) => craft[i]), false, undefined, { ...sweepSettings(ctx.config).gradient, seed: ctx.config.seed });
  const out = d.dataSync() as Float32Array;
  x.dispose();
  d.dispose();
  return out;
}

export async function measureBoundary(ctx: BoundaryContext): Promise<MeasuredBoundary> {
  const { config, oracle, log } = ctx;
  const allowPartial = config.allowPartial;
  const craft = config.craftLabel === 'oracle' ? ctx.cleanVictim : ctx.substituteClean;
  const local: Labeler = async (images, count) => labelImages(ctx.substitute, images, count);
  let sent = 0;
  const victim: Labeler = (images, count) => {
    sent += count;
    return oracle.label(images, count, 'measurement');
  };
  const paid = () => oracle.counts().measurement;

  // Distances: both models bisected along the same directions, on the same quantised probes.
  const n = Math.min(config.boundary.images, ctx.evalSet.count);
  const rows = Array.from({ length: n }, (_, i) => i);
  const part = subset(ctx.evalSet, rows);
  const d = n > 0 ? directions(ctx, rows, craft) : new Float32Array(0);
  log(`boundary: first flip of ${n} images along the substitute's FGSM direction (coarse scan + bisection, to 1/255, ε ≤ ${EPSILON_MAX})`);
  // The substitute's search runs while the victim answers the victim's (overlap.ts): the same probes, the same labels.
  const onSubstitute = flipDistances(part.images, d, n, turnTakingLabeler(ctx.substitute), { epsilonMax: EPSILON_MAX, reference: ctx.substituteClean.slice(0, n) });
  const partial: PartialMeasure[] = [];
  let before = paid();
  let vic: { epsilons: (number | null)[]; flippedTo: (number | null)[]; calls: number };
  try {
    vic = await besideSubstitute(() => flipDistances(part.images, d, n, victim, { epsilonMax: EPSILON_MAX, reference: ctx.cleanVictim.slice(0, n) }), onSubstitute);
  } catch (e) {
    // The images are searched together, so a cut leaves none of them measured: no victim distance is reported.
    partial.push(onCut(e, allowPartial, 'boundary.distances', 'boundary first-flip search', 0, n));
    vic = { epsilons: [], flippedTo: [], calls: 0 };
  }
  const sub = await onSubstitute;
  const distanceQueries = paid() - before;
  const distanceProbes = sent;
  const measuredFlips = vic.epsilons.length;
  const stats = boundaryGap(sub.epsilons.slice(0, measuredFlips), vic.epsilons);
  const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(3));
  log(
    `boundary: median flip ε substitute ${fmt(stats.substitute.median)}, victim ${fmt(stats.victim.median)}, ` +
      `gap ${fmt(stats.medianGap)}, r ${fmt(stats.pearson)}; ${distanceQueries} victim queries in ${vic.calls} batches` +
      (measuredFlips < n ? ` — PARTIAL: the key's budget ran out, no victim distance measured (0 of ${n} images)` : ''),
  );

  // Each model's own nearest boundary, label-only (RayS), on the first images.
  const nr = Math.min(config.boundary.rays.images, ctx.evalSet.count);
  let nearest: NearestBoundary | null = null;
  if (nr > 0) {
    const rows2 = Array.from({ length: nr }, (_, i) => i);
    const few = subset(ctx.evalSet, rows2);
    log(`boundary: nearest L∞ boundary of ${nr} images by RayS, ≤ ${config.boundary.rays.queries} queries each, on the victim and the substitute`);
    nearest = await nearestBoundaries({
      images: few.images,
      count: nr,
      truth: few.labels,
      cleanVictim: ctx.cleanVictim.slice(0, nr),
      substituteClean: ctx.substituteClean.slice(0, nr),
      substitute: ctx.substitute,
      victim,
      paid,
      seed: config.seed,
      queriesPerImage: config.boundary.rays.queries,
      classes: ctx.classNames.length,
      allowPartial,
    });
    if (nearest.partial) partial.push(nearest.partial);
    log(
      `boundary: nearest L∞ boundary median substitute ${fmt(nearest.substituteSummary.median)}, victim ${fmt(nearest.victimSummary.median)}, ` +
        `r ${fmt(nearest.pearson)}, median cosine ${fmt(nearest.medianCosine)}; ${nearest.queries} victim queries` +
        (nearest.partial ? ` — PARTIAL: over the ${nearest.images} of ${nr} images RayS finished before the key's budget ran out` : ''),
    );
  }
  const nearestProbes = nearest?.probes ?? 0;

  // Maps: one image per class in turn, each in the plane of its attack direction and a random orthogonal one.
  const chosen = chooseRows(ctx.evalSet.labels, config.boundary.maps, () => true);
  const maps: MeasuredMap[] = [];
  const pooled: { substitute: number[]; victim: number[] } = { substitute: [], victim: [] };
  before = paid();
  for (const [k, index] of chosen.entries()) {
    const size = pixelCount(ctx.evalSet.shape);
    const image = ctx.evalSet.images.slice(index * size, (index + 1) * size);
    const d1 = directions(ctx, [index], craft);
    const plane = planeGrid(image, d1, {
      size: config.boundary.grid,
      extent: config.boundary.extent,
      rng: createRng((config.seed ^ MAP_SEED_SALT) + index),
    });
    const count = plane.size * plane.size;
    const mapBefore = paid();
    const asked = askNow(victim, plane.points, count);
    await nextTurn();
    // The substitute labels the same points while the victim does.
    const substituteLabels = await local(plane.points, count);
    let victimLabels: Int32Array;
    try {
      victimLabels = await asked;
    } catch (e) {
      partial.push(onCut(e, allowPartial, 'boundary.maps', `boundary map ${k + 1} of ${chosen.length}`, maps.length * count, chosen.length * count));
      break;
    }
    const queries = paid() - mapBefore;
    const agree = agreement(substituteLabels, victimLabels);
    pooled.substitute.push(...substituteLabels);
    pooled.victim.push(...victimLabels);
    const map = {
      index,
      trueLabel: ctx.evalSet.labels[index],
      substituteLabel: ctx.substituteClean[index],
      victimLabel: ctx.cleanVictim[index],
      grid: plane.size,
      extent: plane.extent,
      substituteLabels: Array.from(substituteLabels),
      victimLabels: Array.from(victimLabels),
      agreement: agree,
      queries,
    };
    const caption = `evaluation image ${index} (class ${map.trueLabel}, ${ctx.classNames[map.trueLabel] ?? map.trueLabel}): substitute | victim | where they differ`;
    maps.push({ ...map, caption });
    log(`boundary map ${k + 1}/${chosen.length} (image ${index}, class ${map.trueLabel}): agreement ${fmt(agree)}, ${queries} victim queries`);
  }

  return {
    direction: 'substitute-fgsm-sign',
    craftLabel: config.craftLabel,
    epsilonMax: EPSILON_MAX,
    precision: EPSILON_STEP,
    images: measuredFlips,
    truth: Array.from(part.labels).slice(0, measuredFlips),
    substituteDistances: sub.epsilons.slice(0, measuredFlips),
    victimDistances: vic.epsilons,
    victimFlippedTo: vic.flippedTo,
    substituteFlippedTo: sub.flippedTo.slice(0, measuredFlips),
    stats,
    maps,
    mapAgreement: agreement(pooled.substitute, pooled.victim),
    nearest,
    queries: { distances: distanceQueries, maps: paid() - before, nearest: nearest?.queries ?? 0 },
    probes: { distances: distanceProbes, maps: sent - distanceProbes - nearestProbes },
    ...(partial.length ? { partial } : {}),
  };
}
