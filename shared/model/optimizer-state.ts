import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';

/**
 * Adam's state (step count, first and second moments), copied out synchronously and put back, so an
 * interrupted training run continues with the optimizer exactly where it was. tfjs only offers an
 * async getWeights() that hands out its live variables, which the synchronous training loop cannot
 * wait for between two steps; the copy reads the same fields getWeights() reads (tfjs-core 4.22's
 * AdamOptimizer: iterations_, accumulatedFirstMoment, accumulatedSecondMoment — test/tfjs-internals
 * checks they are still there). Restoring goes through the public setWeights(), then puts back the
 * bias-correction powers β^t as they were: setWeights recomputes them with pow(), which differs in the
 * last bits from the running product a step keeps, and the resumed run would drift from the original.
 */
/** A tensor's values copied out of the backend, with its shape: what a checkpoint stores. */
export interface Array32 {
  shape: number[];
  values: Float32Array;
}

export const arrayOf = (t: tf.Tensor): Array32 => ({ shape: t.shape, values: Float32Array.from(t.dataSync() as Float32Array) });

export interface OptimizerState {
  iterations: number;
  /** The running products β₁^(t+1) and β₂^(t+1) the next step's bias correction uses. */
  accBeta1: number;
  accBeta2: number;
  /** Moments in the optimizer's own order (the trainable variables' order): first all m, then all v. */
  moments: ({ name: string } & Array32)[];
}

interface AdamFields {
  iterations_?: number;
  accBeta1?: tf.Variable;
  accBeta2?: tf.Variable;
  accumulatedFirstMoment?: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment?: { originalName: string; variable: tf.Variable }[];
}

export function snapshotAdam(optimizer: tf.Optimizer): OptimizerState {
  const f = optimizer as unknown as AdamFields;
  if (!(optimizer instanceof tf.AdamOptimizer) || !Array.isArray(f.accumulatedFirstMoment) || !Array.isArray(f.accumulatedSecondMoment) || !f.accBeta1 || !f.accBeta2) {
    throw new TransferlabError('internal', 'cannot read the optimizer state: not a tfjs AdamOptimizer with the fields this version was written against');
  }
  const moments = [...f.accumulatedFirstMoment, ...f.accumulatedSecondMoment].map((m) => ({ name: m.originalName, ...arrayOf(m.variable) }));
  return { iterations: f.iterations_ ?? 0, accBeta1: f.accBeta1.dataSync()[0], accBeta2: f.accBeta2.dataSync()[0], moments };
}

/** An Adam optimizer carrying `state` (learning rate set by the caller's schedule before each step). */
export async function restoreAdam(learningRate: number, state: OptimizerState): Promise<tf.AdamOptimizer> {
  const optimizer = tf.train.adam(learningRate);
  const named = [
    { name: 'iter', tensor: tf.scalar(state.iterations, 'int32') },
    ...state.moments.map((m) => ({ name: m.name, tensor: tf.tensor(m.values, m.shape, 'float32') })),
  ];
  await optimizer.setWeights(named);
  tf.dispose(named.map((n) => n.tensor));
  const f = optimizer as unknown as AdamFields;
  tf.tidy(() => {
    f.accBeta1!.assign(tf.scalar(state.accBeta1));
    f.accBeta2!.assign(tf.scalar(state.accBeta2));
  });
  return optimizer;
}
