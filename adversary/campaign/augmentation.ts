import * as tf from '@tensorflow/tfjs';
import { imagesTensor } from '../../shared/datasets/images.js';
import { pixelCount } from '../../shared/datasets/types.js';
import type { Model } from '../../shared/model/model.js';
import { reservoirSample, type Rng } from '../../shared/random.js';

/**
 * Jacobian-based dataset augmentation (Papernot et al. 2017):
 *   S_{r+1} = S_r ∪ { x + λ · sign(J_F(x)[O(x)]) : x ∈ S_r }
 * where J_F(x)[O(x)] is the gradient of the substitute's output for the oracle's label. We take
 * the logit's gradient: same direction as the probability's away from saturation, and still
 * informative where the softmax has saturated.
 */
export function jacobianStep(model: Model, images: Float32Array, labels: Int32Array, lambda: number, chunk = 256): Float32Array {
  const count = labels.length;
  const size = pixelCount(model.inputShape);
  const out = new Float32Array(count * size);
  const [lo, hi] = model.bounds;
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const next = tf.tidy(() => {
      const x = imagesTensor(images.subarray(start * size, (start + n) * size), n, model.inputShape);
      const picked = tf.tensor1d(labels.subarray(start, start + n), 'int32');
      // Summing the selected logits of independent images gives each image its own gradient.
      const grad = tf.grad((input: tf.Tensor) => {
        const logits = model.logits(input as tf.Tensor4D);
        return tf.sum(tf.mul(logits, tf.oneHot(picked, logits.shape[1])));
      });
      return tf.clipByValue(tf.add(x, tf.mul(tf.sign(grad(x)), lambda)), lo, hi);
    });
    out.set(next.dataSync() as Float32Array, start * size);
    next.dispose();
  }
  return out;
}

/**
 * The points to augment this round: all of S_r, or — with reservoir sampling (Papernot et al.
 * 2016) — at most κ of them, which caps the oracle queries a round costs.
 */
export function pointsToAugment(setSize: number, reservoir: number | undefined, rng: Rng): Int32Array {
  if (reservoir === undefined || reservoir >= setSize) return Int32Array.from({ length: setSize }, (_, i) => i);
  return reservoirSample(setSize, reservoir, rng);
}

/** Gather images (of `size` values each) from a flat image array. */
export function gatherImages(images: Float32Array, indices: Int32Array, size: number): Float32Array {
  const out = new Float32Array(indices.length * size);
  indices.forEach((j, i) => out.set(images.subarray(j * size, (j + 1) * size), i * size));
  return out;
}

export function concatImages(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function concatLabels(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
