import * as tf from '@tensorflow/tfjs';
import { layersClasses, layersInputShape } from './model.js';
import { TransferlabError } from '../errors.js';
import { createRng, permutation } from '../random.js';
import { distillationLoss } from './distill.js';

/**
 * The one training loop, shared by the victim and the substitute: seeded shuffles, Adam,
 * softmax cross-entropy on logits, progress through callbacks (the edges draw the bars).
 */
export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** Called after every batch with running means for the epoch. */
  onBatchEnd?: (info: BatchInfo) => void;
  onEpochEnd?: (info: { epoch: number; loss: number; accuracy: number; imagesPerSecond: number }) => void;
  /**
   * Translate each batch by a random offset of up to this many pixels (zero-filled). Digits keep their
   * class when shifted a little, so this enlarges a small labelled set without asking anyone for labels.
   */
  shift?: number;
  /** Label smoothing of the cross-entropy targets (0 = off): softer targets, smoother input gradients. */
  labelSmoothing?: number;
  /** The loss sees logits / T (default 1): T > 1 trains larger logits, as distillation does. */
  temperature?: number;
  /**
   * count × classes soft targets (distill.ts `softTargets`: the victim's probabilities) to fit instead of
   * the labels' one-hots; the labels still score the running accuracy.
   */
  targets?: Float32Array;
  /**
   * Optional per-batch input transform (adversarial training swaps in attacked images here). It may
   * also return a different batch with its own labels (e.g. clean and attacked copies side by side).
   */
  transformBatch?: (x: tf.Tensor4D, labels: tf.Tensor1D, model: tf.LayersModel, step: number) => tf.Tensor4D | { x: tf.Tensor4D; labels: tf.Tensor1D };
  /**
   * Optional per-batch loss in place of the cross-entropy (TRADES adds a term on attacked copies). Called
   * outside the gradient with the (transformed) batch, so it can attack the model as it is; the function it
   * returns runs inside the gradient with the model's training-mode logits of that batch and gives the loss
   * plus the logits the running accuracy scores (e.g. the attacked copies'). Soft targets, label smoothing
   * and the temperature do not apply to it.
   */
  batchLoss?: (x: tf.Tensor4D, labels: tf.Tensor1D, model: tf.LayersModel, step: number) => (logits: tf.Tensor2D) => { loss: tf.Scalar; scored: tf.Tensor2D };
  /**
   * Learning rate at `progress` ∈ [0, 1] of the whole run (epochs done + fraction of this one), set
   * before every step; constant `learningRate` without it.
   */
  schedule?: (progress: number) => number;
  /**
   * Called after every step with the model; returning 'stop' ends training there (the robust-overfitting
   * guard uses it to check, restore weights and stop).
   */
  afterBatch?: (info: BatchInfo & { progress: number }) => 'stop' | void;
  /** With transformBatch: measure clean accuracy on every Nth batch too (an extra forward pass; default 10). */
  cleanEvery?: number;
  /**
   * Continue an interrupted run: training starts at `position` with `optimizer` (restored from the
   * checkpoint), and the shuffle and shift streams are replayed up to there, so the run goes on exactly
   * as it would have. The caller restores the model's weights and the global random stream.
   */
  resume?: { position: TrainPosition; optimizer: tf.Optimizer };
  /** After afterBatch, at the batches `at` names (1-based within the epoch): hand over what a resume needs. */
  checkpoint?: { at: (batch: number, batches: number) => boolean; save: (position: TrainPosition, optimizer: tf.Optimizer) => void };
}

/** Where a run stands between two steps: all a resume needs besides weights and optimizer. */
export interface TrainPosition {
  /** The epoch under way (0-based) and how many of its batches are trained. */
  epoch: number;
  batch: number;
  /** That epoch's running sums, so its means come out as in an uninterrupted run. */
  sums: { loss: number; correct: number; seen: number; cleanHits: number; cleanSeen: number };
  /** Training time before this position (the resumed run adds its own). */
  elapsedSeconds: number;
  /** The last finished epoch's summary (when the position is at an epoch's start). */
  summary: TrainSummary;
}

export interface BatchInfo {
  epoch: number;
  batch: number;
  batches: number;
  /** Running means over the epoch, on the images trained on (the attacked ones under adversarial training). */
  loss: number;
  accuracy: number;
  /** Under adversarial training: running clean accuracy over the sampled batches. */
  cleanAccuracy?: number;
}

export interface TrainSummary {
  epochs: number;
  loss: number;
  accuracy: number;
  /** True when afterBatch ended training before the last epoch. */
  stoppedEarly: boolean;
  /** Steady-state throughput: the last epoch's images per second. */
  imagesPerSecond: number;
  durationSeconds: number;
}

export function trainClassifier(
  model: tf.LayersModel,
  images: Float32Array,
  labels: Int32Array,
  opts: TrainOptions,
): TrainSummary {
  const count = labels.length;
  // The model says what it takes: images of its input shape, labels among its output classes.
  const [height, width, channels] = layersInputShape(model);
  const classes = layersClasses(model);
  const px = height * width * channels;
  if (images.length < count * px) {
    throw new TransferlabError('invalid_training_data', `${images.length} pixel values for ${count} images of ${height}×${width}×${channels}`);
  }
  const optimizer = opts.resume?.optimizer ?? tf.train.adam(opts.learningRate);
  const from = opts.resume?.position;
  const rng = createRng(opts.seed);
  // Its own stream, so turning shifts on or off leaves the shuffles unchanged.
  const shiftRng = createRng(opts.seed + 0x5eed);
  const shift = opts.shift ?? 0;
  const maxShift = Math.floor((Math.min(height, width) - 1) / 2);
  if (!Number.isInteger(shift) || shift < 0 || shift > maxShift) throw new TransferlabError('invalid_config', `shift must be an integer in 0..${maxShift}, got ${shift}`);
  const smoothing = opts.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new TransferlabError('invalid_config', `labelSmoothing must be in [0, 1), got ${smoothing}`);
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new TransferlabError('invalid_config', `temperature must be a finite number > 0, got ${temperature}`);
  const soft = opts.targets;
  if (soft && soft.length !== count * classes) throw new TransferlabError('invalid_training_data', `${soft.length} soft targets for ${count} images of ${classes} classes`);
  const qBuf = soft ? new Float32Array(opts.batchSize * classes) : null;
  const batches = Math.ceil(count / opts.batchSize);
  const xBuf = new Float32Array(opts.batchSize * px);
  const yBuf = new Int32Array(opts.batchSize);
  const started = performance.now() - (from?.elapsedSeconds ?? 0) * 1000;
  let summary: TrainSummary = from?.summary ?? { epochs: 0, loss: NaN, accuracy: NaN, stoppedEarly: false, imagesPerSecond: 0, durationSeconds: 0 };
  // Replay the streams of the epochs (and batches) already trained: each epoch draws one shuffle, each batch two shifts.
  for (let e = 0; e < (from?.epoch ?? 0); e++) {
    permutation(count, rng);
    if (shift) for (let k = 0; k < 2 * batches; k++) shiftRng();
  }
  const cleanEvery = opts.cleanEvery ?? 10;
  // The optimizer reads its rate on every update, so a schedule can move it between steps.
  const rate = optimizer as unknown as { learningRate: number };
  let stop = false;
  const saveAt = (epoch: number, batch: number, sums: TrainPosition['sums']) =>
    opts.checkpoint!.save({ epoch, batch, sums, elapsedSeconds: (performance.now() - started) / 1000, summary }, optimizer);
  for (let epoch = from?.epoch ?? 0; epoch < opts.epochs && !stop; epoch++) {
    const order = permutation(count, rng);
    const resumed = from && epoch === from.epoch ? from : null;
    if (resumed && shift) for (let k = 0; k < 2 * resumed.batch; k++) shiftRng();
    const epochStart = performance.now();
    let lossSum = resumed?.sums.loss ?? 0;
    let correct = resumed?.sums.correct ?? 0;
    let seen = resumed?.sums.seen ?? 0;
    let cleanHits = resumed?.sums.cleanHits ?? 0;
    let cleanSeen = resumed?.sums.cleanSeen ?? 0;
    let b = resumed?.batch ?? 0;
    const firstBatch = b;
    for (; b < batches && !stop; b++) {
      if (opts.schedule) rate.learningRate = opts.schedule((epoch + (b + 1) / batches) / opts.epochs);
      const size = Math.min(opts.batchSize, count - b * opts.batchSize);
      // The whole batch is cropped at one random offset in [-shift, shift]^2 (0 when shifts are off).
      const dy = shift ? Math.floor(shiftRng() * (2 * shift + 1)) - shift : 0;
      const dx = shift ? Math.floor(shiftRng() * (2 * shift + 1)) - shift : 0;
      for (let i = 0; i < size; i++) {
        const j = order[b * opts.batchSize + i];
        translateInto(xBuf, i * px, images, j * px, dy, dx, [height, width, channels]);
        yBuf[i] = labels[j];
        if (soft && qBuf) qBuf.set(soft.subarray(j * classes, (j + 1) * classes), i * classes);
      }
      // Images this step trains on: the batch, or what transformBatch made of it.
      let stepImages = size;
      const sampleClean = (opts.transformBatch ?? opts.batchLoss) !== undefined && b % cleanEvery === 0;
      const [loss, hits, cleanBatchHits] = tf.tidy(() => {
        const clean = tf.tensor4d(xBuf.subarray(0, size * px), [size, height, width, channels]);
        const given = tf.tensor1d(yBuf.subarray(0, size), 'int32');
        const cleanCount = sampleClean ? (tf.equal((model.predict(clean) as tf.Tensor2D).argMax(1), given).sum() as tf.Scalar) : tf.scalar(0);
        const batch = opts.transformBatch ? opts.transformBatch(clean, given, model, epoch * batches + b) : clean;
        const { x, labels: y } = batch instanceof tf.Tensor ? { x: batch, labels: given } : batch;
        stepImages = y.shape[0];
        const custom = opts.batchLoss?.(x, y, model, epoch * batches + b);
        // Soft targets follow their images only when transformBatch keeps the batch as it is; a batchLoss
        // brings its own targets.
        const target = custom ? undefined : qBuf && y === given ? tf.tensor2d(qBuf.subarray(0, size * classes), [size, classes]) : tf.oneHot(y, classes);
        let batchHits: tf.Scalar | undefined;
        const l = optimizer.minimize(() => {
          const logits = model.apply(x, { training: true }) as tf.Tensor2D;
          const { loss: stepLoss, scored } = custom ? custom(logits) : { loss: distillationLoss(target as tf.Tensor2D, logits, temperature, smoothing), scored: logits };
          batchHits = tf.keep(tf.equal(scored.argMax(1), y).sum() as tf.Scalar);
          return stepLoss;
        }, true) as tf.Scalar;
        return [l, batchHits as tf.Scalar, cleanCount];
      });
      lossSum += loss.dataSync()[0] * stepImages;
      correct += hits.dataSync()[0];
      seen += stepImages;
      if (sampleClean) {
        cleanHits += cleanBatchHits.dataSync()[0];
        cleanSeen += size;
      }
      tf.dispose([loss, hits, cleanBatchHits]);
      const info: BatchInfo = { epoch, batch: b + 1, batches, loss: lossSum / seen, accuracy: correct / seen, ...(cleanSeen ? { cleanAccuracy: cleanHits / cleanSeen } : {}) };
      opts.onBatchEnd?.(info);
      if (opts.afterBatch?.({ ...info, progress: (epoch + (b + 1) / batches) / opts.epochs }) === 'stop') stop = true;
      if (!stop && b + 1 < batches && opts.checkpoint?.at(b + 1, batches)) saveAt(epoch, b + 1, { loss: lossSum, correct, seen, cleanHits, cleanSeen });
    }
    const seconds = (performance.now() - epochStart) / 1000;
    summary = {
      epochs: epoch + b / batches,
      loss: lossSum / seen,
      accuracy: correct / seen,
      stoppedEarly: stop,
      imagesPerSecond: (Math.min(count, b * opts.batchSize) - firstBatch * opts.batchSize) / seconds,
      durationSeconds: (performance.now() - started) / 1000,
    };
    opts.onEpochEnd?.({ epoch, loss: summary.loss, accuracy: summary.accuracy, imagesPerSecond: summary.imagesPerSecond });
    // An epoch's end is saved as the next one's start (after onEpochEnd, which the edge prints).
    if (!stop && epoch + 1 < opts.epochs && opts.checkpoint?.at(batches, batches)) saveAt(epoch + 1, 0, { loss: 0, correct: 0, seen: 0, cleanHits: 0, cleanSeen: 0 });
  }
  optimizer.dispose();
  return summary;
}

/**
 * dst(r, c) = src(r + dy, c + dx), 0 outside the image: a pad-and-crop shift, done while the batch is
 * copied (as tensor ops on every step it cost ~10% of a training step).
 */
function translateInto(dst: Float32Array, at: number, src: Float32Array, from: number, dy: number, dx: number, shape: readonly [number, number, number]): void {
  const [h, w, ch] = shape;
  const size = h * w * ch;
  if (dy === 0 && dx === 0) {
    dst.set(src.subarray(from, from + size), at);
    return;
  }
  dst.fill(0, at, at + size);
  // Rows are contiguous runs of w·ch values in HWC order: a column shift moves whole pixels.
  const c0 = Math.max(0, -dx), c1 = Math.min(w, w - dx);
  for (let r = Math.max(0, -dy); r < Math.min(h, h - dy); r++) {
    const row = from + (r + dy) * w * ch;
    dst.set(src.subarray(row + (c0 + dx) * ch, row + (c1 + dx) * ch), at + (r * w + c0) * ch);
  }
}
