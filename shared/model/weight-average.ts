import * as tf from '@tensorflow/tfjs';
import { arrayOf, type Array32 } from './optimizer-state.js';
import { TransferlabError } from '../errors.js';

/**
 * An exponential moving average of a model's weights, updated after every training step and put into
 * the model at the end (Polyak averaging; Gowal et al. 2020, "Uncovering the limits of adversarial
 * training", found it worth robust accuracy at no training cost). The decay is warmed up as in
 * TensorFlow's ExponentialMovingAverage with a step count — min(decay, (1 + t) / (10 + t)) — so the
 * random initialisation's weights are forgotten within the first steps instead of weighing on the average
 * for thousands of them.
 */
export interface AverageState {
  updates: number;
  weights: Array32[];
}

export class WeightAverage {
  private readonly averages: tf.Variable[];
  private count: number;

  constructor(model: tf.LayersModel, readonly decay: number, saved?: AverageState) {
    if (!(decay > 0 && decay < 1)) throw new TransferlabError('invalid_config', `the weight average's decay must be in (0, 1) (got ${decay})`);
    const now = model.getWeights();
    if (saved && saved.weights.length !== now.length) throw new TransferlabError('checkpoint_corrupt', `the checkpoint's weight average holds ${saved.weights.length} arrays, the model ${now.length}`);
    // tidy frees the starting copies; the variables keep their values.
    this.averages = tf.tidy(() => now.map((w, i) => tf.variable(saved ? tf.tensor(saved.weights[i].values, saved.weights[i].shape) : w.clone(), false)));
    this.count = saved?.updates ?? 0;
  }

  get updates(): number {
    return this.count;
  }

  /** Fold the model's current weights into the average (after a step). */
  update(model: tf.LayersModel): void {
    const d = Math.min(this.decay, (1 + this.count) / (10 + this.count));
    tf.tidy(() => model.getWeights().forEach((w, i) => this.averages[i].assign(this.averages[i].mul(d).add(w.mul(1 - d)))));
    this.count++;
  }

  /** What a checkpoint keeps, so a resumed run averages on exactly as the interrupted one would. */
  state(): AverageState {
    return { updates: this.count, weights: this.averages.map(arrayOf) };
  }

  /** Put the average into the model (its weights are replaced). */
  applyTo(model: tf.LayersModel): void {
    model.setWeights(this.averages);
  }

  dispose(): void {
    tf.dispose(this.averages);
  }
}
