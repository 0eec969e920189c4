import { concatImages, concatLabels, jacobianStep } from '../adversary/campaign/augmentation.js';
import { lambdaForRound } from '../adversary/campaign/config.js';
import { buildModel } from '../shared/model/architectures.js';
import { adversarySplit, imagesTensor, IMAGE_SIZE, loadMnist, quantise, subset } from '../shared/datasets/index.js';
import { fromLayers, predictLabels, type Model } from '../shared/model/model.js';
import { seedGlobalRandom } from '../shared/random.js';
import { trainClassifier } from '../shared/model/training.js';

/**
 * The query stream a Papernot campaign sends, built as the campaign builds it (adversary/ modules,
 * default settings): the seed set of test images, then per round the substitute (substitute-cnn,
 * 10 epochs, Adam 1e-3) trained on the victim's labels and x + λ·sign(∇) for every point so far,
 * quantised to the 8-bit images that go on the wire. Labels are the victim's.
 */
export interface QueryStream {
  images: Float32Array;
  labels: Int32Array;
  count: number;
  /** Query index (0-based) where each part starts: seed, round 1 augmentation, … */
  starts: number[];
}

export function labelWith(victim: Model): (images: Float32Array) => Int32Array {
  return (images) => {
    const x = imagesTensor(images, images.length / IMAGE_SIZE);
    try {
      return predictLabels(victim, x);
    } finally {
      x.dispose();
    }
  };
}

export function papernotStream(victim: Model, opts: { seed?: number; seedSize?: number; rounds?: number; lambda?: number; epochs?: number } = {}): QueryStream {
  const { seed = 1, seedSize = 150, rounds = 1, lambda = 0.1, epochs = 10 } = opts;
  const label = labelWith(victim);
  const seedSet = subset(loadMnist('test'), adversarySplit(seed, seedSize, 0).seedSet);
  let images = seedSet.images;
  let labels = label(images);
  const starts = [0];
  seedGlobalRandom(seed);
  const substitute = buildModel('substitute-cnn');
  try {
    for (let r = 0; r < rounds; r++) {
      trainClassifier(substitute, images, labels, { epochs, batchSize: 128, learningRate: 0.001, seed: seed * 1000 + r });
      const fresh = quantise(jacobianStep(fromLayers(substitute), images, labels, lambdaForRound({ lambda, tau: 3 }, r)));
      starts.push(labels.length);
      labels = concatLabels(labels, label(fresh));
      images = concatImages(images, fresh);
    }
  } finally {
    substitute.dispose();
  }
  return { images, labels, count: labels.length, starts };
}

/** `count` natural test images in a seeded order (benign clients: each its own shuffle). */
export function naturalStream(victim: Model, count: number, order: ArrayLike<number>): QueryStream {
  const picked = subset(loadMnist('test'), Array.from({ length: count }, (_, i) => order[i % order.length]));
  return { images: picked.images, labels: labelWith(victim)(picked.images), count, starts: [0] };
}

/** Rows [start, start + n) of a stream as 8-bit pixels (the uint8 wire format). */
export function streamPixels(s: QueryStream, start: number, n: number): Uint8Array {
  const out = new Uint8Array(n * IMAGE_SIZE);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(s.images[start * IMAGE_SIZE + i] * 255);
  return out;
}
