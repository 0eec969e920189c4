import * as tf from '@tensorflow/tfjs';
import { imagesTensor } from '../datasets/images.js';
import { TransferlabError } from '../errors.js';
import { pixelCount, type ImageShape } from '../datasets/types.js';

/**
 * A differentiable classifier, as foolbox sees one: input bounds plus a function to logits.
 * Attacks take gradients through `logits`, never through a softmax, so that confidently
 * classified images still yield a usable gradient.
 */
export interface Model {
  readonly bounds: readonly [number, number];
  /** One image's shape, H×W×C: flat image arrays are read in this layout. */
  readonly inputShape: ImageShape;
  /** x: [N, H, W, C] in `bounds` → logits [N, classes]. Must be differentiable (no dataSync inside). */
  logits(x: tf.Tensor4D): tf.Tensor2D;
}

/** Wrap a layers model whose last layer emits logits (softmax lives in the loss). */
export function fromLayers(model: tf.LayersModel): Model {
  return {
    bounds: [0, 1],
    inputShape: layersInputShape(model),
    logits: (x) => model.apply(x, { training: false }) as tf.Tensor2D,
  };
}

/** Top-1 labels of a batch, synchronously read back. Batches internally to bound memory. */
export function predictLabels(model: Model, x: tf.Tensor4D, batchSize = 1000): Int32Array {
  const n = x.shape[0];
  const out = new Int32Array(n);
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const labels = tf.tidy(() => model.logits(x.slice([start, 0, 0, 0], [size, -1, -1, -1])).argMax(1));
    out.set(labels.dataSync() as Int32Array, start);
    labels.dispose();
  }
  return out;
}

/** A layers model's image input H×W×C, or a clear error for a model that does not take images. */
export function layersInputShape(model: tf.LayersModel): ImageShape {
  const shape = model.inputs[0]?.shape ?? [];
  const [, h, w, c] = shape;
  if (shape.length !== 4 || ![h, w, c].every((d) => typeof d === 'number' && d > 0)) {
    throw new TransferlabError('model_unsupported', `the model's input is [${shape.map((d) => d ?? 'any').join(', ')}]; an image classifier takes [batch, height, width, channels] with fixed sizes`);
  }
  return [h as number, w as number, c as number];
}

/** The number of classes a layers model's logits have. */
export function layersClasses(model: tf.LayersModel): number {
  const shape = model.outputs[0]?.shape ?? [];
  const classes = shape[shape.length - 1];
  if (shape.length !== 2 || typeof classes !== 'number' || classes < 2) {
    throw new TransferlabError('model_unsupported', `the model's output is [${shape.map((d) => d ?? 'any').join(', ')}]; a classifier emits [batch, classes] with at least 2 classes`);
  }
  return classes;
}

/** Top-1 labels of count images (row-major H×W×C each, in [0,1]): the tensor is made and released here. */
export function labelImages(model: Model, images: Float32Array, count: number, batchSize = 1000): Int32Array {
  const x = imagesTensor(images.subarray(0, count * pixelCount(model.inputShape)), count, model.inputShape);
  try {
    return predictLabels(model, x, batchSize);
  } finally {
    x.dispose();
  }
}
