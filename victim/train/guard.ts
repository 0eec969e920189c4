import * as tf from '@tensorflow/tfjs';
import { pgd } from '../../shared/attacks/index.js';
import { imagesTensor } from '../../shared/datasets/images.js';
import { MNIST_SHAPE, type ImageShape } from '../../shared/datasets/types.js';
import { fromLayers } from '../../shared/model/model.js';
import { arrayOf, type Array32 } from '../../shared/model/optimizer-state.js';

/**
 * The catastrophic-overfitting guard (Wong, Rice & Kolter 2020; Rice et al. 2020). Single-step
 * adversarial training can suddenly learn to defeat its own one-step attack: PGD accuracy drops to
 * near 0 within a few hundred steps while the training accuracy against FGSM keeps rising. The guard
 * attacks a fixed batch of training images that training never sees with PGD at the training ε,
 * several times an epoch, keeps a copy of the most robust weights, and treats a drop of more than
 * `collapseDrop` below the best reading as a collapse: it restores the best weights and lowers the
 * training step (or, after `maxCollapses`, stops).
 */
export interface GuardSettings {
  epsilon: number;
  /** Held-back training images attacked at every check (default 500). */
  images: number;
  /** PGD iterations of a check (step 2.5 ε / steps, random start fixed across checks). */
  steps: number;
  checksPerEpoch: number;
  /** A reading this far below the best one is a collapse (default 0.2, i.e. 20 points). */
  collapseDrop: number;
  /** Collapses answered by restoring and lowering the step before training stops (default 2). */
  maxCollapses: number;
  /** The training step is multiplied by this after a collapse (default 0.8). */
  stepFactor: number;
  /** The final weights are kept unless the best reading beats them by more than this (default 0.01). */
  keepTolerance: number;
}

export const GUARD_DEFAULTS: Omit<GuardSettings, 'epsilon'> = { images: 500, steps: 10, checksPerEpoch: 3, collapseDrop: 0.2, maxCollapses: 2, stepFactor: 0.8, keepTolerance: 0.01 };

export interface GuardReading {
  /** Epochs trained when read (fractional within an epoch). */
  epoch: number;
  robustAccuracy: number;
  cleanAccuracy: number;
  learningRate: number | null;
  /** The training attack's step size at the time. */
  stepSize: number | null;
  event?: 'collapse' | 'stop';
}

export type GuardVerdict = 'ok' | 'collapse' | 'stop';

/** What a training checkpoint keeps of the guard, so a resumed run judges later readings the same way. */
export interface GuardState {
  readings: GuardReading[];
  collapses: number;
  best: { reading: GuardReading; weights: Array32[] } | null;
}

export class OverfitGuard {
  readonly readings: GuardReading[] = [];
  collapses = 0;
  private best: { reading: GuardReading; weights: tf.Tensor[] } | null = null;
  private readonly x: tf.Tensor4D;

  constructor(
    readonly settings: GuardSettings,
    images: Float32Array,
    private readonly labels: Int32Array,
    shape: ImageShape = MNIST_SHAPE,
  ) {
    this.x = imagesTensor(images, labels.length, shape);
  }

  /** PGD and clean accuracy of `model` on the guard batch, same start every time so readings compare. */
  measure(model: tf.LayersModel): { robustAccuracy: number; cleanAccuracy: number } {
    const net = fromLayers(model);
    const { raw, clipped } = pgd(net, this.x, this.labels, { epsilon: this.settings.epsilon, steps: this.settings.steps, seed: 7 });
    raw.dispose();
    const truth = tf.tensor1d(this.labels, 'int32');
    const hits = tf.tidy(() => [clipped, this.x].map((x) => tf.equal(net.logits(x).argMax(1), truth).sum().dataSync()[0] / this.labels.length));
    tf.dispose([clipped, truth]);
    return { robustAccuracy: hits[0], cleanAccuracy: hits[1] };
  }

  /** Read the model, remember it when it is the most robust so far, and say whether it collapsed. */
  check(model: tf.LayersModel, at: { epoch: number; learningRate: number | null; stepSize: number | null }): GuardVerdict {
    const reading: GuardReading = { epoch: Number(at.epoch.toFixed(3)), ...this.measure(model), learningRate: at.learningRate, stepSize: at.stepSize };
    this.readings.push(reading);
    const best = this.best?.reading.robustAccuracy ?? -1;
    if (reading.robustAccuracy >= best) {
      tf.dispose(this.best?.weights ?? []);
      this.best = { reading, weights: model.getWeights().map((w) => w.clone()) };
      return 'ok';
    }
    if (best - reading.robustAccuracy <= this.settings.collapseDrop) return 'ok';
    this.collapses++;
    const verdict = this.collapses > this.settings.maxCollapses ? 'stop' : 'collapse';
    reading.event = verdict;
    this.restoreBest(model);
    return verdict;
  }

  bestReading(): GuardReading | null {
    return this.best?.reading ?? null;
  }

  restoreBest(model: tf.LayersModel): void {
    if (this.best) model.setWeights(this.best.weights);
  }

  /**
   * At the end: the best weights replace the final ones when they were clearly more robust. Returns
   * the reading whose weights are kept.
   */
  finish(model: tf.LayersModel): GuardReading | null {
    const last = this.readings.at(-1);
    const best = this.best?.reading ?? null;
    if (!best || !last) return null;
    if (last.event === undefined && best.robustAccuracy - last.robustAccuracy <= this.settings.keepTolerance) return last;
    this.restoreBest(model);
    return best;
  }

  /** Everything a resumed run needs to judge later readings exactly as this one would. */
  state(): GuardState {
    const best = this.best && { reading: this.best.reading, weights: this.best.weights.map(arrayOf) };
    return { readings: this.readings.map((r) => ({ ...r })), collapses: this.collapses, best };
  }

  restore(s: GuardState): void {
    this.readings.splice(0, this.readings.length, ...s.readings);
    this.collapses = s.collapses;
    tf.dispose(this.best?.weights ?? []);
    this.best = s.best && { reading: s.best.reading, weights: s.best.weights.map((w) => tf.tensor(w.values, w.shape)) };
  }

  dispose(): void {
    tf.dispose([this.x, ...(this.best?.weights ?? [])]);
    this.best = null;
  }
}

/** The batches after which a check runs: `checks` evenly spaced ones, the last one closing the epoch. */
export function checkpointsOf(batches: number, checks: number): Set<number> {
  const at = new Set<number>();
  for (let k = 1; k <= checks; k++) at.add(Math.max(1, Math.round((k * batches) / checks)));
  return at;
}
