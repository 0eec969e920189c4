import type * as tf from '@tensorflow/tfjs';
import { buildModel, MNIST_MODEL, type ModelShape } from '../../shared/model/architectures.js';
import { accuracy, agreement, type Rate } from '../../shared/metrics.js';
import { imagesTensor } from '../../shared/datasets/images.js';
import { pixelCount } from '../../shared/datasets/types.js';
import { fromLayers, predictLabels } from '../../shared/model/model.js';
import { seedGlobalRandom } from '../../shared/random.js';
import { trainClassifier } from '../../shared/model/training.js';
import { substituteMembers, type CampaignConfig } from './config.js';
import { roundTraining, trainingTargets } from './substitute.js';
import { loadMember, loadRoundSubstitute, saveMember } from './checkpoints.js';
import type { RunStore } from '../run/store.js';

/**
 * The ensemble's other members. Only the first member chose which points to label (its Jacobian);
 * the others are fitted to the same labelled points — not one extra query — replaying the first
 * member's schedule: round r's epochs on the first |S_r| points (S_r is a prefix of the final set,
 * since each round only appends). Each member has its own initialisation and shuffles, and is saved
 * under checkpoints/members/ so that a resumed run does not train it again.
 */
export interface MemberRecord {
  member: number;
  arch: string;
  /** A snapshot: the first member as it was after this round (not trained again). */
  round?: number;
  substituteAccuracy: Rate;
  agreement: Rate;
  trainSeconds: number;
}

export interface MemberContext {
  config: CampaignConfig;
  store: RunStore;
  images: Float32Array;
  labels: Int32Array;
  /** With threat topk/scores: the victim's probabilities of the same points, which every member is distilled from too. */
  scores?: Float32Array;
  /** Points the first member trained on in each round, in order. */
  roundSizes: number[];
  evaluation: { images: Float32Array; truth: Int32Array; victim: Int32Array };
  /** The victim's input shape and classes, as the first member was built for (default MNIST). */
  shape?: ModelShape;
  log?: (line: string) => void;
}

/** Seeds of member m (≥ 2) in round r: apart from the first member's (seed·1000 + r, r < 12). */
const memberSeed = (seed: number, member: number, round: number) => seed * 1000 + 500 + 20 * member + round;

export async function trainMembers(ctx: MemberContext): Promise<{ models: tf.LayersModel[]; records: MemberRecord[] }> {
  const c = ctx.config;
  const archs = substituteMembers(c);
  const models: tf.LayersModel[] = [];
  const records: MemberRecord[] = [];
  const shape = ctx.shape ?? MNIST_MODEL;
  const pixels = pixelCount(shape.inputShape);
  const evalX = imagesTensor(ctx.evaluation.images, ctx.evaluation.truth.length, shape.inputShape);
  try {
    for (let member = 2; member <= archs.length; member++) {
      const arch = archs[member - 1];
      let model = await loadMember(ctx.store, member);
      let trainSeconds = 0;
      if (!model) {
        const t0 = performance.now();
        seedGlobalRandom(memberSeed(c.seed, member, 0));
        const fresh = buildModel(arch, shape);
        ctx.roundSizes.forEach((size, round) => {
          seedGlobalRandom(memberSeed(c.seed, member, round));
          const labels = ctx.labels.subarray(0, size);
          const targets = trainingTargets(c, labels, ctx.scores?.subarray(0, size * shape.classes), shape.classes);
          trainClassifier(fresh, ctx.images.subarray(0, size * pixels), labels, { ...roundTraining(c, round, memberSeed(c.seed, member, round)), targets });
        });
        trainSeconds = (performance.now() - t0) / 1000;
        await saveMember(ctx.store, member, fresh, { arch, dataset: 'mnist', round: ctx.roundSizes.length });
        model = fresh;
      }
      const pred = predictLabels(fromLayers(model), evalX);
      const record = { member, arch, substituteAccuracy: accuracy(pred, ctx.evaluation.truth), agreement: agreement(pred, ctx.evaluation.victim), trainSeconds };
      ctx.log?.(`ensemble member ${member} (${arch}): agreement with victim ${((record.agreement ?? NaN) * 100).toFixed(1)}%, ${trainSeconds.toFixed(1)} s`);
      models.push(model);
      records.push(record);
    }
  } finally {
    evalX.dispose();
  }
  return { models, records };
}

/**
 * The first member's earlier rounds (`config.snapshots`) as further members, numbered after the trained
 * ones: read from their round checkpoints, so they cost no training. A snapshot is a weaker substitute
 * than the last round's, but a different one, and the mean of the two transfers better than either.
 */
export async function snapshotMembers(ctx: Pick<MemberContext, 'config' | 'store' | 'evaluation' | 'shape' | 'log'>): Promise<{ models: tf.LayersModel[]; records: MemberRecord[] }> {
  const c = ctx.config;
  const arch = substituteMembers(c)[0];
  const shape = ctx.shape ?? MNIST_MODEL;
  const models: tf.LayersModel[] = [];
  const records: MemberRecord[] = [];
  const evalX = imagesTensor(ctx.evaluation.images, ctx.evaluation.truth.length, shape.inputShape);
  try {
    for (const [i, round] of c.snapshots.entries()) {
      const model = await loadRoundSubstitute(ctx.store, round);
      const pred = predictLabels(fromLayers(model), evalX);
      const record = { member: substituteMembers(c).length + i + 1, arch, round, substituteAccuracy: accuracy(pred, ctx.evaluation.truth), agreement: agreement(pred, ctx.evaluation.victim), trainSeconds: 0 };
      ctx.log?.(`ensemble member ${record.member} (${arch}, the first one after round ${round}): agreement with victim ${((record.agreement ?? NaN) * 100).toFixed(1)}%`);
      models.push(model);
      records.push(record);
    }
  } finally {
    evalX.dispose();
  }
  return { models, records };
}
