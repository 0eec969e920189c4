import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TransferlabError } from '../../shared/errors.js';
import type { Array32, OptimizerState } from '../../shared/model/optimizer-state.js';
import type { TrainPosition } from '../../shared/model/training.js';
import type { GuardState } from './guard.js';
import type { AverageState } from '../../shared/model/weight-average.js';

/**
 * The checkpoint of a victim training run in progress: a folder `<out>.training` beside the model
 * folder, replaced atomically at every checkpoint and removed once the model is saved. It holds what
 * a resumed run needs to go on exactly as the interrupted one would have (same weights at the end,
 * bit for bit): the model's weights, Adam's state, the loop's position and running sums, how far the
 * seeded global random stream had got, the training attack's step, the overfitting guard's state and the weight average.
 * The arrays go to one binary file, everything else to state.json; a run resumes only under the
 * settings that made the checkpoint (the fingerprint).
 */
export interface TrainingCheckpoint {
  fingerprint: Record<string, unknown>;
  position: TrainPosition;
  randomDraws: number;
  stepSize: number | null;
  weights: Array32[];
  optimizer: OptimizerState;
  guard: GuardState | null;
  /** The weight average so far (--weight-average), absent in checkpoints without one. */
  average?: AverageState | null;
}

export const checkpointDirOf = (out: string): string => join(dirname(out), `${basename(out)}.training`);

const STATE = 'state.json';
const ARRAYS = 'arrays.bin';

/** Write (or replace) the checkpoint: a temporary folder, fsync'd, renamed into place. */
export function writeCheckpoint(dir: string, cp: TrainingCheckpoint): void {
  const arrays: Array32[] = [];
  const ref = (a: Array32) => {
    arrays.push(a);
    return { shape: a.shape, index: arrays.length - 1 };
  };
  const state = {
    format: 'transferlab-training-checkpoint/1',
    fingerprint: cp.fingerprint,
    position: cp.position,
    randomDraws: cp.randomDraws,
    stepSize: cp.stepSize,
    weights: cp.weights.map(ref),
    optimizer: { iterations: cp.optimizer.iterations, accBeta1: cp.optimizer.accBeta1, accBeta2: cp.optimizer.accBeta2, moments: cp.optimizer.moments.map((m) => ({ name: m.name, ...ref(m) })) },
    guard: cp.guard && { readings: cp.guard.readings, collapses: cp.guard.collapses, best: cp.guard.best && { reading: cp.guard.best.reading, weights: cp.guard.best.weights.map(ref) } },
    average: cp.average ? { updates: cp.average.updates, weights: cp.average.weights.map(ref) } : null,
    lengths: [] as number[],
  };
  state.lengths = arrays.map((a) => a.values.length);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const put = (name: string, chunks: Uint8Array[]) => {
    const fd = openSync(join(tmp, name), 'w');
    try {
      for (const c of chunks) writeSync(fd, c);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  put(ARRAYS, arrays.map((a) => new Uint8Array(a.values.buffer, a.values.byteOffset, a.values.byteLength)));
  put(STATE, [Buffer.from(JSON.stringify(state) + '\n')]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

export function readCheckpoint(dir: string): TrainingCheckpoint {
  let state;
  let bytes: Buffer;
  try {
    state = JSON.parse(readFileSync(join(dir, STATE), 'utf8'));
    bytes = readFileSync(join(dir, ARRAYS));
  } catch (e) {
    throw new TransferlabError('checkpoint_corrupt', `cannot read the training checkpoint in ${dir} (${(e as Error).message}); delete the folder to start over`);
  }
  const lengths = state.lengths as number[];
  if (state.format !== 'transferlab-training-checkpoint/1' || bytes.length !== lengths.reduce((a, b) => a + b, 0) * 4) {
    throw new TransferlabError('checkpoint_corrupt', `the training checkpoint in ${dir} is incomplete or of another format; delete the folder to start over`);
  }
  const arrays: Float32Array[] = [];
  let at = 0;
  for (const n of lengths) {
    arrays.push(new Float32Array(bytes.buffer.slice(bytes.byteOffset + at * 4, bytes.byteOffset + (at + n) * 4)));
    at += n;
  }
  const deref = (r: { shape: number[]; index: number }): Array32 => ({ shape: r.shape, values: arrays[r.index] });
  return {
    fingerprint: state.fingerprint,
    position: state.position,
    randomDraws: state.randomDraws,
    stepSize: state.stepSize,
    weights: state.weights.map(deref),
    optimizer: { iterations: state.optimizer.iterations, accBeta1: state.optimizer.accBeta1, accBeta2: state.optimizer.accBeta2, moments: state.optimizer.moments.map((m: { name: string; shape: number[]; index: number }) => ({ name: m.name, ...deref(m) })) },
    guard: state.guard && { readings: state.guard.readings, collapses: state.guard.collapses, best: state.guard.best && { reading: state.guard.best.reading, weights: state.guard.best.weights.map(deref) } },
    average: state.average ? { updates: state.average.updates, weights: state.average.weights.map(deref) } : null,
  };
}

export const hasCheckpoint = (dir: string): boolean => existsSync(join(dir, STATE));

/** The settings that differ between a checkpoint and this run (empty: it may resume). */
export function fingerprintDifferences(saved: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(now)]);
  return [...keys].filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k])).map((k) => `${k}: ${JSON.stringify(saved[k])} then, ${JSON.stringify(now[k])} now`);
}
