import type * as tf from '@tensorflow/tfjs';
import { buildModel, type ModelShape } from '../../shared/model/architectures.js';
import { pixelCount } from '../../shared/datasets/types.js';
import { accuracy, agreement } from '../../shared/metrics.js';
import { imagesTensor, quantise } from '../../shared/datasets/images.js';
import { fromLayers, predictLabels } from '../../shared/model/model.js';
import type { Labeler } from '../../shared/labeler.js';
import { createRng, seedGlobalRandom } from '../../shared/random.js';
import { trainClassifier, type TrainOptions } from '../../shared/model/training.js';
import { softTargets } from '../../shared/model/distill.js';
import { TransferlabError } from '../../shared/errors.js';
import { jacobianStep, pointsToAugment, gatherImages, concatImages, concatLabels } from './augmentation.js';
import { epochsForRound, lambdaForRound, substituteMembers, type CampaignConfig } from './config.js';
import type { Checkpoint, RoundRecord } from './checkpoints.js';
import { askNow, nextTurn } from './overlap.js';

/**
 * Papernot's substitute training, read as select → query → fit, round after round:
 * fit the substitute to the oracle's labels of S_r, then grow S_r along the substitute's
 * Jacobian and ask the oracle to label the new points. The substitute never sees a true label.
 */
/** How the substitute trains in one round; every member of an ensemble trains the same way. */
export function roundTraining(c: CampaignConfig, round: number, seed: number): TrainOptions {
  return { epochs: epochsForRound(c, round), shift: c.shift, batchSize: c.batchSize, learningRate: c.learningRate, labelSmoothing: c.labelSmoothing, temperature: c.temperature, seed };
}

/** What the substitute fits: the labels' one-hots, or (threat topk/scores) the victim's probabilities softened by T. */
export function trainingTargets(c: CampaignConfig, labels: Int32Array, scores: Float32Array | undefined, classes: number): Float32Array | undefined {
  return c.threat === 'label' || !scores ? undefined : softTargets(scores, labels, classes, c.temperature);
}

export interface RoundsContext {
  config: CampaignConfig;
  /** The victim's input shape and class count (from /v1/info): the substitute is built for them. */
  shape: ModelShape;
  /** Labels from the victim, paid as attack queries. */
  queryAttack: Labeler;
  /**
   * With threat topk/scores: the victim's probabilities (count × classes, NaN where a top-k answer named
   * no score), asked before the labels of the same points (which its answer then holds: nothing paid twice).
   */
  queryScores?: (images: Float32Array, count: number) => Promise<Float32Array>;
  attackQueries: () => number;
  /** Held-out images for the per-round report; their true labels are the simulator's, not the adversary's. */
  evaluation: { images: Float32Array; truth: Int32Array; victim: Int32Array };
  start: { round: number; images: Float32Array; labels: Int32Array; scores?: Float32Array; model?: tf.LayersModel };
  checkpoint: (c: Checkpoint) => Promise<void>;
  onBatchEnd?: TrainOptions['onBatchEnd'];
  onRound?: (r: RoundRecord) => void;
  phases: { training: number; augmentation: number; labelling: number };
}

export async function trainSubstitute(ctx: RoundsContext): Promise<{ model: tf.LayersModel; images: Float32Array; labels: Int32Array; scores?: Float32Array }> {
  const c = ctx.config;
  let { images, labels, scores } = ctx.start;
  if (c.threat !== 'label' && (!ctx.queryScores || !scores)) {
    throw new TransferlabError('threat_unavailable', `threat ${c.threat}: the substitute rounds need the victim's scores of their starting points (a checkpoint written by a label campaign has none) and an oracle that answers scores`);
  }
  let model = ctx.start.model;
  if (!model) {
    seedGlobalRandom(c.seed);
    model = buildModel(substituteMembers(c)[0], ctx.shape);
  }
  const evalX = imagesTensor(ctx.evaluation.images, ctx.evaluation.truth.length, ctx.shape.inputShape);
  try {
    for (let round = ctx.start.round; round < c.rounds; round++) {
      // Re-seeding per round keeps a resumed run identical to an uninterrupted one.
      seedGlobalRandom(c.seed * 1000 + round);
      const t0 = performance.now();
      const targets = trainingTargets(c, labels, scores, ctx.shape.classes);
      trainClassifier(model, images, labels, { ...roundTraining(c, round, c.seed * 1000 + round), targets, onBatchEnd: ctx.onBatchEnd });
      let trainSeconds = (performance.now() - t0) / 1000;
      let evalSeconds = 0;
      /** The round's substitute on the held-out images (for its record): computed while the victim labels, when it does. */
      const evaluate = () => {
        const t = performance.now();
        const labelled = predictLabels(fromLayers(model), evalX);
        evalSeconds = (performance.now() - t) / 1000;
        return labelled;
      };
      let pred: Int32Array;

      const trainedOn = labels.length;
      const lambda = lambdaForRound(c, round);
      let augmentSeconds = 0;
      const last = round === c.rounds - 1;
      if (!last) {
        const t1 = performance.now();
        const chosen = pointsToAugment(labels.length, c.reservoir, createRng(c.seed * 7919 + round));
        // What the victim labels is the 8-bit image that is actually sent: keep exactly that.
        const fresh = quantise(jacobianStep(fromLayers(model), gatherImages(images, chosen, pixelCount(ctx.shape.inputShape)), Int32Array.from(chosen, (i) => labels[i]), lambda));
        augmentSeconds = (performance.now() - t1) / 1000;
        ctx.phases.augmentation += augmentSeconds;
        const t2 = performance.now();
        // Scores first: their answer carries the labels too, so the labels of the same points are not paid again.
        const freshScores = ctx.queryScores && scores ? await ctx.queryScores(fresh, chosen.length) : undefined;
        const asked = askNow(ctx.queryAttack, fresh, chosen.length);
        await nextTurn();
        pred = evaluate();
        const freshLabels = await asked;
        ctx.phases.labelling += (performance.now() - t2) / 1000 - evalSeconds;
        images = concatImages(images, fresh);
        labels = concatLabels(labels, freshLabels);
        if (scores && freshScores) scores = concatImages(scores, freshScores);
      } else pred = evaluate();
      trainSeconds += evalSeconds;
      ctx.phases.training += trainSeconds;
      const record: RoundRecord = {
        round: round + 1,
        substituteSize: trainedOn,
        attackQueries: ctx.attackQueries(),
        substituteAccuracy: accuracy(pred, ctx.evaluation.truth) ?? Number.NaN,
        agreement: agreement(pred, ctx.evaluation.victim) ?? Number.NaN,
        lambda,
        trainSeconds,
        augmentSeconds,
      };
      await ctx.checkpoint({ record, images, labels, scores, model });
      ctx.onRound?.(record);
    }
  } finally {
    evalX.dispose();
  }
  return { model, images, labels, scores };
}
