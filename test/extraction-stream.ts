import { IMAGE_SIZE, loadMnist } from '../shared/datasets/index.js';
import { createRng } from '../shared/random.js';

/**
 * A Papernot-like query stream without a substitute to train: `seeds` natural test images, then each
 * moved by λ along a seeded ±1 sign pattern — what x + λ·sign(∇) looks like to PRADA (a cluster of
 * small distances), clipped to the 8-bit wire format. Labels are the test set's (a victim's answers
 * in the tests that send it).
 */
export function signAugmentedStream(seeds = 150, lambda = 26, seed = 5): { pixels: Uint8Array; labels: Int32Array; count: number } {
  const test = loadMnist('test');
  const rng = createRng(seed);
  const pixels = new Uint8Array(2 * seeds * IMAGE_SIZE);
  pixels.set(test.pixels.subarray(0, seeds * IMAGE_SIZE));
  for (let i = 0; i < seeds * IMAGE_SIZE; i++) pixels[seeds * IMAGE_SIZE + i] = Math.max(0, Math.min(255, test.pixels[i] + (rng() < 0.5 ? -lambda : lambda)));
  const labels = new Int32Array(2 * seeds);
  for (let i = 0; i < seeds; i++) labels[i] = labels[seeds + i] = test.labels[i];
  return { pixels, labels, count: 2 * seeds };
}
