/**
 * Quick throughput check of the wasm backend on one architecture (default paper-cnn, the CNN whose
 * figures docs/results/performance.md compares).
 * Usage: npx tsx scripts/kernel-speed.ts [--arch NAME] [--threads N] [--steps N] [--profile] [--helper]
 * Random data: speed does not depend on the values. Prints images/s for training (batch 128, Adam),
 * inference (batch 1000) and input gradients (batch 256), with --profile the time per kernel, and with
 * --helper each kernel's time with the pool's helper thread and without it (alternating rounds).
 */
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { prepareWasm, registerWasmKernels, wasmHelpersReady, wasmThreads } from '../shared/engine/wasm-kernels.js';
import { useHelperThread } from '../shared/engine/wasm-pool.js';
import { buildModel as buildArchitecture, checkArchitecture } from '../shared/model/architectures.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const threads = arg('threads', os.availableParallelism());
const steps = arg('steps', 6);
const profile = process.argv.includes('--profile');
const helperAb = process.argv.includes('--helper');

tf.env().set('PROD', true); // silences the "install tfjs-node" banner
await prepareWasm(threads);
await tf.setBackend('wasm');
registerWasmKernels();
await wasmHelpersReady();

const archArg = process.argv.indexOf('--arch');
const arch = archArg >= 0 ? process.argv[archArg + 1] : 'paper-cnn';
checkArchitecture(arch);
function buildModel(): tf.LayersModel {
  const m = buildArchitecture(arch);
  m.compile({ optimizer: tf.train.adam(1e-3), loss: (y, p) => tf.losses.softmaxCrossEntropy(y, p) });
  return m;
}

/**
 * images/s of fn (perCall images per call): `warm` warm-up calls, then the best of 3 rounds of `n`
 * calls. The best round is the least disturbed by other processes on a shared machine.
 */
async function rate(perCall: number, n: number, warm: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warm; i++) await fn();
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await fn();
    best = Math.max(best, (perCall * n) / ((performance.now() - t0) / 1000));
  }
  return best;
}

const model = buildModel();
const bs = 128;
const xs = tf.randomUniform([bs, 28, 28, 1]);
const ys = tf.oneHot(tf.randomUniform([bs], 0, 10, 'int32') as tf.Tensor1D, 10);
const train = async (): Promise<void> => { await model.trainOnBatch(xs, ys); };

const xInf = tf.randomUniform([1000, 28, 28, 1]);
const infer = async (): Promise<void> => {
  const p = model.predict(xInf) as tf.Tensor;
  await p.data();
  p.dispose();
};

const gBs = 256;
const xg = tf.randomUniform([gBs, 28, 28, 1]);
const yg = tf.oneHot(tf.randomUniform([gBs], 0, 10, 'int32') as tf.Tensor1D, 10);
const lossOf = (x: tf.Tensor): tf.Scalar => tf.losses.softmaxCrossEntropy(yg, model.apply(x) as tf.Tensor) as tf.Scalar;
const inputGrad = async (): Promise<void> => {
  const s = tf.tidy(() => tf.sign(tf.grad(lossOf)(xg)));
  await s.data();
  s.dispose();
};

const trainRate = await rate(bs, steps, 3, train);
const inferRate = await rate(1000, Math.max(1, steps >> 2), 1, infer);
const gradRate = await rate(gBs, Math.max(2, steps >> 1), 1, inputGrad);
console.log(`wasm threads: ${wasmThreads()}`);
console.log(`training   (batch ${bs}):  ${trainRate.toFixed(0)} images/s`);
console.log(`inference  (batch 1000): ${inferRate.toFixed(0)} images/s`);
console.log(`input grad (batch ${gBs}):  ${gradRate.toFixed(0)} images/s`);

/** Profiles one training step and adds each kernel's time, times `weight`, under its key. */
async function addKernelTimes(into: Map<string, number>, key: (k: { name: string; inputShapes: unknown }) => string, weight: number): Promise<void> {
  const info = await tf.profile(train);
  for (const k of info.kernels) {
    const ms = await k.kernelTimeMs;
    into.set(key(k), (into.get(key(k)) ?? 0) + (typeof ms === 'number' ? ms : 0) * weight);
  }
}

if (profile) {
  const byKernel = new Map<string, number>();
  const n = 4;
  for (let i = 0; i < n; i++) await addKernelTimes(byKernel, (k) => k.name, 1 / n);
  const rows = [...byKernel.entries()].sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((s, [, ms]) => s + ms, 0);
  console.log(`per training step, kernel time ${total.toFixed(1)} ms:`);
  for (const [name, ms] of rows.slice(0, 15)) console.log(`  ${name.padEnd(24)} ${ms.toFixed(2)} ms`);
}

if (helperAb) {
  // Per kernel and input shapes: ms per training step with the helper thread and without, over alternating rounds.
  const withHelper = new Map<string, number>();
  const alone = new Map<string, number>();
  const rounds = 8;
  const byShapes = (k: { name: string; inputShapes: unknown }) => `${k.name} ${JSON.stringify(k.inputShapes)}`;
  for (let i = 0; i < rounds; i++) {
    for (const on of i % 2 ? [true, false] : [false, true]) {
      useHelperThread(on);
      await addKernelTimes(on ? withHelper : alone, byShapes, 1 / rounds);
    }
  }
  useHelperThread(true);
  const rows = [...withHelper.entries()].filter(([name]) => !name.includes('__op')).sort((a, b) => b[1] - a[1]);
  console.log('per training step, ms with the helper thread / without:');
  for (const [name, ms] of rows.slice(0, 30)) console.log(`  ${name.padEnd(64)} ${ms.toFixed(3).padStart(7)} ${(alone.get(name) ?? 0).toFixed(3).padStart(7)}`);
}
