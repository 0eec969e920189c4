import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { projectedImages, runAttack, type AttackName, type AttackOptions } from '../../shared/attacks/index.js';
import { DEFAULT_BATCH } from '../../shared/attacks/gradient.js';
import type { EnsembleCombine } from '../../shared/attacks/losses.js';
import { backendInfo } from '../../shared/engine/backend.js';
import { fromSource, ownModuleUrl } from '../../shared/entry.js';
import { useHelperThread } from '../../shared/engine/wasm-pool.js';
import { modelFiles } from '../../shared/model/model-io.js';
import type { Model } from '../../shared/model/model.js';
import { craftPart, type CraftRequest } from './craft-worker.js';

/**
 * Iterative crafting on two threads that share nothing: this one and a worker, each single-threaded,
 * each attacking its half of the images. On a 2-core machine two single-threaded computations side by
 * side keep their full speed, while the backend's own two threads gain much less (their per-kernel
 * hand-offs cost more than small kernels gain). The halves are whole internal batches, and each gets its slice of the whole
 * batch's random start, so the images come out exactly as from one thread.
 */
export interface CraftSplit {
  /** The attack's projected images for all of x, as runAttack(...).clipped would hold them. */
  craft(attack: AttackName, x: tf.Tensor4D, goal: Int32Array, options: AttackOptions): Promise<Float32Array>;
  close(): Promise<void>;
}

/**
 * The worker's code: from source, it registers tsx (its ESM API, the `tsx/esm/api` export, as a URL an
 * eval'd worker can import) and loads craft-worker.ts as the main thread does; the built package's
 * craft-worker.js loads as it is.
 */
function workerCode(): string {
  const worker = JSON.stringify(ownModuleUrl('./craft-worker.js', import.meta.url).href);
  if (!fromSource(import.meta.url)) return `import(${worker});`;
  const tsxApi = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href;
  return `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${worker}); });`;
}

type Reply = { kind: 'ready' } | { kind: 'crafted'; images: Float32Array } | { kind: 'error'; message: string };

/**
 * Starts the worker with copies of `members` (combined as `combine`, as `model` combines them here);
 * null where the split does not apply (not on wasm).
 */
export async function startCraftSplit(model: Model, members: tf.LayersModel[], combine: EnsembleCombine): Promise<CraftSplit | null> {
  if (backendInfo().backend !== 'wasm') return null;
  const files = await Promise.all(members.map(async (m) => (await modelFiles(m, { arch: 'substitute', dataset: 'crafting' })).files));
  const worker = new Worker(workerCode(), {
    eval: true, workerData: { craftWorker: true }, env: { ...process.env, TRANSFERLAB_THREADS: '1' } },
  );
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      const onError = (e: Error) => settle(() => reject(e));
      const onExit = (code: number) => settle(() => reject(new Error(`craft worker: exited (code ${code})`)));
      const onMessage = (m: Reply) => settle(() => (m.kind === 'error' ? reject(new Error(`craft worker: ${m.message}`)) : resolve(m)));
      const settle = (then: () => void) => {
        worker.off('error', onError).off('exit', onExit).off('message', onMessage);
        then();
      };
      worker.on('error', onError).on('exit', onExit).on('message', onMessage);
    });
  const ready = next();
  worker.postMessage({ kind: 'models', files, combine });
  try {
    await ready;
  } catch (e) {
    // One thread still crafts the same images, only slower: say so and go on without the worker.
    console.warn(`${e instanceof Error ? e.message : String(e)}; crafting on one thread`);
    await worker.terminate();
    return null;
  }
  return {
    async craft(attack, x, goal, options) {
      const [n, h, w, c] = x.shape;
      const batch = options.batchSize ?? DEFAULT_BATCH;
      const mid = batch * Math.ceil(Math.ceil(n / 2) / batch);
      const pixels = h * w * c;
      if (mid >= n) return projectedImages(runAttack(attack, model, x, goal, options));
      const all = x.dataSync() as Float32Array;
      const request: CraftRequest = {
        attack,
        images: all.slice(mid * pixels),
        count: n - mid,
        from: mid,
        total: n,
        shape: [h, w, c],
        goal: goal.slice(mid),
        targets: options.targets?.slice(mid),
        options: withoutTensors(options),
      };
      const answer = next();
      // Should this thread's half fail first, the worker's answer is still awaited by no one: mark it handled.
      answer.catch(() => {});
      worker.postMessage({ kind: 'craft', request });
      const head = x.slice([0, 0, 0, 0], [mid, -1, -1, -1]);
      const out = new Float32Array(n * pixels);
      useHelperThread(false);
      try {
        out.set(craftPart(attack, model, head, goal.subarray(0, mid), { ...options, targets: options.targets?.subarray(0, mid) }, 0, n), 0);
      } finally {
        useHelperThread(true);
        head.dispose();
      }
      const reply = await answer;
      if (reply.kind !== 'crafted') throw new Error('craft worker: unexpected reply');
      out.set(reply.images, mid * pixels);
      return out;
    },
    async close() {
      await worker.terminate();
    },
  };
}

/** The options a worker can be sent: the per-image targets travel on their own, tensors not at all. */
function withoutTensors(o: AttackOptions): CraftRequest['options'] {
  const copy: AttackOptions = { ...o };
  delete copy.targets;
  delete copy.startOffsets;
  return copy;
}
