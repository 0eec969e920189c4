/**
 * A second crafting thread (see craft-split.ts): its own single-threaded wasm backend and its own copy
 * of the substitute's models, attacking the images it is sent. Messages: `models` (load them, answer
 * `ready`), `craft` (attack, answer the projected images), anything failing answers `error`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { ensembleOf, type EnsembleCombine } from '../../shared/attacks/losses.js';
import { projectedImages, randomStartOffsets, runAttack, type AttackName, type AttackOptions } from '../../shared/attacks/index.js';
import { initBackend } from '../../shared/engine/backend.js';
import { modelFromFiles, type ModelFiles } from '../../shared/model/model-io.js';
import { fromLayers, type Model } from '../../shared/model/model.js';

export interface CraftRequest {
  attack: AttackName;
  images: Float32Array;
  count: number;
  /** Where these images start in the whole batch, and its size: for the random start's offsets. */
  from: number;
  total: number;
  shape: [number, number, number];
  goal: Int32Array;
  targets?: Int32Array;
  options: Omit<AttackOptions, 'targets' | 'startOffsets'>;
}

let model: Model | undefined;

async function load(files: ModelFiles[], combine: EnsembleCombine): Promise<void> {
  await initBackend('wasm', 1);
  const bytes = (v: Uint8Array | string | undefined) => (typeof v === 'string' ? new TextEncoder().encode(v) : v);
  const models = await Promise.all(files.map(async (f, i) => (await modelFromFiles((name) => bytes(f[name as keyof ModelFiles]), `member ${i + 1}`)).model));
  model = ensembleOf(models.map(fromLayers), combine);
}

/**
 * The attack's projected images for images [from, from + count) of a batch of `total` (x holds just
 * those), each starting from its own slice of the whole batch's random start: what either thread runs.
 */
export function craftPart(attack: AttackName, on: Model, x: tf.Tensor4D, goal: Int32Array, options: AttackOptions, from: number, total: number): Float32Array {
  const [count, h, w, c] = x.shape;
  const offsets = tf.tidy(() => randomStartOffsets([total, h, w, c], options.epsilon, options.seed ?? 0).slice([from, 0, 0, 0], [count, -1, -1, -1]));
  try {
    return projectedImages(runAttack(attack, on, x, goal, { ...options, startOffsets: offsets }));
  } finally {
    offsets.dispose();
  }
}

function craft(r: CraftRequest): Float32Array {
  if (!model) throw new Error('craft worker: no models loaded');
  const x = tf.tensor4d(r.images, [r.count, ...r.shape]);
  try {
    return craftPart(r.attack, model, x, r.goal, { ...r.options, targets: r.targets }, r.from, r.total);
  } finally {
    x.dispose();
  }
}

// Only in a thread started by craft-split.ts: imported anywhere else (for craftPart), it listens to nothing.
if (workerData?.craftWorker) parentPort?.on('message', (msg: { kind: 'models'; files: ModelFiles[]; combine: EnsembleCombine } | { kind: 'craft'; request: CraftRequest }) => {
  const port = parentPort as NonNullable<typeof parentPort>;
  (async () => {
    if (msg.kind === 'models') {
      await load(msg.files, msg.combine);
      port.postMessage({ kind: 'ready' });
    } else {
      const images = craft(msg.request);
      port.postMessage({ kind: 'crafted', images });
    }
  })().catch((e: unknown) => port.postMessage({ kind: 'error', message: e instanceof Error ? e.message : String(e) }));
});
