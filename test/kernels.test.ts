/**
 * Every kernel shared/engine/wasm-kernels.ts registers for `wasm` is checked against the `cpu` backend on
 * random inputs, plus whole training steps (loss, gradients, Adam update) of a small CNN and an MLP.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { prepareWasm, registerWasmKernels, wasmThreads } from '../shared/engine/wasm-kernels.js';
import { poolFor, poolReady, useHelperThread } from '../shared/engine/wasm-pool.js';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { uniformSigned } from '../shared/random.js';

type Backend = 'cpu' | 'wasm';
type Pad = 'valid' | 'same' | tf.backend_util.ExplicitPadding;

const randoms = uniformSigned;

/** Runs fn on each backend (inputs must be built inside fn) and returns the values. */
async function both(fn: () => tf.Tensor | tf.Tensor[]): Promise<Record<Backend, Float32Array[]>> {
  const res = {} as Record<Backend, Float32Array[]>;
  for (const b of ['cpu', 'wasm'] as const) {
    await tf.setBackend(b);
    const out = tf.tidy(fn);
    const list = Array.isArray(out) ? out : [out];
    res[b] = list.map((t) => Float32Array.from(t.dataSync()));
    tf.dispose(list);
  }
  return res;
}

function expectClose(a: Float32Array[], b: Float32Array[], rel = 1e-4): void {
  expect(b.length).toBe(a.length);
  a.forEach((x, j) => {
    expect(b[j].length).toBe(x.length);
    let scale = 0, diff = 0;
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(x[i]));
      diff = Math.max(diff, Math.abs(x[i] - b[j][i]));
    }
    expect(diff).toBeLessThanOrEqual(rel * Math.max(scale, 1e-3));
  });
}

beforeAll(async () => {
  await prepareWasm();
  expect(await tf.setBackend('wasm')).toBe(true);
  registerWasmKernels();
  registerWasmKernels(); // idempotent
});

describe('wasm setup', () => {
  it('uses the machine cores', () => {
    expect(wasmThreads()).toBe(Math.min(os.availableParallelism(), 8));
  });
});

describe('convolution gradients match cpu', () => {
  // [batch, H, W, Cin, Cout, K, stride, pad]: 1 and many channels; GEMM tiles (Cout % 8 = 0), the few-tap
  // loop (Cout 4) and XNNPACK (other Cout) paths.
  const cases: Array<[number, number, number, number, number, number, number, Pad]> = [];
  for (const [ci, co] of [[1, 1], [1, 8], [3, 4], [8, 16], [16, 6]]) {
    for (const k of [3, 5]) {
      for (const s of [1, 2]) {
        for (const pad of ['valid', 'same'] as const) cases.push([ci === 8 ? 1 : 3, 11, 10, ci, co, k, s, pad]);
      }
    }
  }
  cases.push([2, 9, 12, 1, 8, 3, 1, [[0, 0], [1, 2], [0, 1], [0, 0]]], [2, 9, 12, 8, 4, 3, 2, [[0, 0], [2, 0], [1, 1], [0, 0]]]);

  it.each(cases)('b%i %ix%i cin %i cout %i k%i s%i %j', async (b, h, w, ci, co, k, s, pad) => {
    const xv = randoms(b * h * w * ci, 1), fv = randoms(k * k * ci * co, 2);
    const shape = (tf.backend_util.computeConv2DInfo([b, h, w, ci], [k, k, ci, co], s, 1, pad)).outShape;
    const dyv = randoms(shape.reduce((p, d) => p * d, 1), 3);
    const attrs = { strides: s, pad, dataFormat: 'NHWC' };
    const res = await both(() => {
      const x = tf.tensor4d(xv, [b, h, w, ci]), f = tf.tensor4d(fv, [k, k, ci, co]), dy = tf.tensor(dyv, shape);
      return [
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: [k, k, ci, co] }) as tf.Tensor,
        tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: [b, h, w, ci] }) as tf.Tensor,
      ];
    });
    expectClose(res.cpu, res.wasm);
  });

  it('falls back correctly for NCHW', async () => {
    const res = await both(() => tf.engine().runKernel('Conv2DBackpropFilter',
      { x: tf.tensor4d(randoms(2 * 3 * 7 * 7, 4), [2, 3, 7, 7]), dy: tf.tensor4d(randoms(2 * 4 * 5 * 5, 5), [2, 4, 5, 5]) },
      { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] }) as tf.Tensor);
    expectClose(res.cpu, res.wasm);
  });
});

describe('GEMM convolutions (im2col + 4x8 tiles, two threads) match cpu', () => {
  // [batch, H, W, Cin, Cout, K, stride, pad]: the CNNs' second layer (pixel count not a multiple of 4),
  // many chunks per thread, a first layer (3-float segments), stride 2 with padding, a 1x1 conv, odd pixel counts.
  const cases: Array<[number, number, number, number, number, number, number, Pad]> = [
    [3, 13, 13, 32, 64, 3, 1, 'valid'], [40, 13, 13, 32, 16, 3, 1, 'valid'], [5, 28, 28, 1, 32, 3, 1, 'valid'],
    [2, 11, 10, 3, 8, 5, 2, 'same'], [2, 9, 12, 8, 16, 3, 2, [[0, 0], [2, 0], [1, 1], [0, 0]]], [3, 7, 7, 4, 8, 1, 1, 'valid'],
    [3, 9, 9, 1, 8, 3, 1, 'valid'], [2, 7, 9, 1, 16, 3, 1, 'same'], // one channel: panels that wrap rows, partial panels
    // The robust nets' 4x4 stride-2 'same' layers (28 → 14 → 7, padding split 1/1): wong-cnn's and wong-wide's.
    [3, 28, 28, 1, 16, 4, 2, 'same'], [3, 14, 14, 16, 32, 4, 2, 'same'], [2, 28, 28, 1, 32, 4, 2, 'same'], [1, 14, 14, 32, 64, 4, 2, 'same'],
  ];
  it.each(cases)('b%i %ix%i cin %i cout %i k%i s%i %j', async (b, h, w, ci, co, k, s, pad) => {
    const xv = randoms(b * h * w * ci, 21), fv = randoms(k * k * ci * co, 22), bv = randoms(co, 23);
    const shape = (tf.backend_util.computeConv2DInfo([b, h, w, ci], [k, k, ci, co], s, 1, pad)).outShape;
    const dyv = randoms(shape.reduce((p, d) => p * d, 1), 24);
    const attrs = { strides: s, pad, dataFormat: 'NHWC' };
    let made = 0;
    const res = await both(() => {
      const before = tf.engine().backend.numDataIds();
      const x = tf.tensor4d(xv, [b, h, w, ci]), f = tf.tensor4d(fv, [k, k, ci, co]), dy = tf.tensor(dyv, shape);
      const bias = tf.tensor1d(bv);
      const out = [
        tf.conv2d(x, f, s, pad as 'valid'),
        tf.fused.conv2d({ x, filter: f, strides: s, pad: pad as 'valid', bias, activation: 'relu' }),
        tf.fused.conv2d({ x, filter: f, strides: s, pad: pad as 'valid', bias }),
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: [k, k, ci, co] }) as tf.Tensor,
        tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: [b, h, w, ci] }) as tf.Tensor,
      ];
      made = tf.engine().backend.numDataIds() - before;
      return out;
    });
    expectClose(res.cpu, res.wasm);
    expect(made).toBe(4 + 5); // the inputs and the outputs: no scratch buffer left behind
  });
});

describe('the helper thread changes nothing but speed', () => {
  // Sizes above the hand-over thresholds (wasm-pool.ts), so every kernel here shares its work.
  it('convolutions, their gradients, a dense layer, a bias sum and max pooling are bit-identical with and without it', async () => {
    await tf.setBackend('wasm');
    await poolReady(tf.backend() as BackendWasm);
    const kit = poolFor(tf.backend() as BackendWasm);
    expect(kit?.ready()).toBe(true);
    const run = (): Float32Array[] => tf.tidy(() => {
      const x = tf.tensor4d(randoms(16 * 13 * 13 * 32, 51), [16, 13, 13, 32]), f = tf.tensor4d(randoms(9 * 32 * 64, 52), [3, 3, 32, 64]);
      const dy = tf.tensor4d(randoms(16 * 11 * 11 * 64, 53), [16, 11, 11, 64]);
      const a = tf.tensor2d(randoms(64 * 1600, 54), [64, 1600]), w = tf.tensor2d(randoms(1600 * 200, 55), [1600, 200]);
      const bias = tf.tensor4d(randoms(40 * 32 * 32 * 16, 57), [40, 32, 32, 16]);
      return [tf.conv2d(x, f, 1, 'valid'),
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 32, 64] }) as tf.Tensor,
        tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { strides: 1, pad: 'valid', dataFormat: 'NHWC', inputShape: [16, 13, 13, 32] }) as tf.Tensor,
        tf.matMul(a, w), tf.matMul(a, a.matMul(w), true, false), tf.sum(bias, [0, 1, 2]),
        // Max pooling and its gradient over 64 images (two halves of 32).
        ...(() => {
          const p = tf.tensor4d(randoms(64 * 32 * 32 * 16, 56), [64, 32, 32, 16]);
          return [tf.maxPool(p, 2, 2, 'valid'), tf.grad((v) => tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid').square().sum())(p)];
        })()].map((t) => Float32Array.from(t.dataSync()));
    });
    const before = kit?.handOvers() ?? 0;
    const withHelper = run();
    // Three convolutions, two products (and their panel copies), the sum, pooling and its gradient.
    expect((kit?.handOvers() ?? 0) - before).toBeGreaterThanOrEqual(10);
    useHelperThread(false);
    try {
      const alone = run();
      alone.forEach((v, i) => expect(Buffer.from(v.buffer).equals(Buffer.from(withHelper[i].buffer))).toBe(true));
    } finally {
      useHelperThread(true);
    }
  });

  it('small kernels keep their work on the calling thread; large ones hand half over', async () => {
    await tf.setBackend('wasm');
    await poolReady(tf.backend() as BackendWasm);
    const kit = poolFor(tf.backend() as BackendWasm);
    const handedOver = (fn: () => tf.Tensor): number => {
      const before = kit?.handOvers() ?? 0;
      tf.tidy(fn).dispose();
      return (kit?.handOvers() ?? 0) - before;
    };
    const small = tf.tensor1d(randoms(128 * 1600, 61)), large = tf.tensor1d(randoms(1 << 20, 62));
    try {
      expect(handedOver(() => tf.mul(small, small))).toBe(0); // a dropout mask's size
      expect(handedOver(() => tf.relu(small))).toBe(0);
      expect(handedOver(() => tf.mul(large, large))).toBe(1);
      expect(handedOver(() => tf.relu(large))).toBe(1);
      // A dense layer of 128 × 1600 → 10 (2 M multiply-adds) stays; one image's convolution stays.
      expect(handedOver(() => tf.matMul(tf.tensor2d(randoms(128 * 1600, 63), [128, 1600]), tf.tensor2d(randoms(1600 * 16, 64), [1600, 16])))).toBe(0);
      expect(handedOver(() => tf.conv2d(tf.tensor4d(randoms(28 * 28, 65), [1, 28, 28, 1]), tf.tensor4d(randoms(9 * 32, 66), [3, 3, 1, 32]), 1, 'valid'))).toBe(0);
    } finally {
      tf.dispose([small, large]);
    }
  });
});

describe('GEMM matrix products (plain, batch of one, fused bias and relu) match cpu', () => {
  // [m, k, n, transposeA, transposeB]: dense-layer shapes (forward, weight and input gradients), odd m.
  it.each([[66, 256, 64, false, false], [128, 160, 96, true, false], [72, 96, 160, false, true], [64, 128, 128, true, true]] as const)(
    'm %i k %i n %i ta %s tb %s', async (m, k, n, ta, tb) => {
      const av = randoms(m * k, 31), bv = randoms(k * n, 32);
      const res = await both(() => {
        const a = tf.tensor2d(av, ta ? [k, m] : [m, k]), b = tf.tensor2d(bv, tb ? [n, k] : [k, n]);
        const bias = tf.tensor1d(randoms(n, 33));
        return [tf.matMul(a, b, ta, tb), tf.matMul(a.reshape([1, ...a.shape]), b.reshape([1, ...b.shape]), ta, tb),
          tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: 'relu' }),
          tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias })];
      });
      expectClose(res.cpu, res.wasm);
    });
});

describe('SIMD elementwise kernels match cpu exactly', () => {
  // Big enough for the two-thread lanes (>= 4096 floats); specials where the semantics differ easily.
  const specials = [NaN, -0, 0, Infinity, -Infinity, 1e-40, -1e-40, 3, -2];
  const values = (n: number, seed: number): Float32Array => {
    const v = randoms(n, seed);
    specials.forEach((x, i) => { v[i * 97] = x; });
    return v;
  };
  const same = (a: Float32Array[], b: Float32Array[]): void => {
    expect(b.length).toBe(a.length);
    a.forEach((x, i) => expect(Array.from(b[i])).toEqual(Array.from(x)));
  };

  it.each(['add', 'sub', 'mul', 'div'] as const)('%s: same shape, scalar either side, bias either side, odd length', async (op) => {
    const f = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div }[op];
    const [a, b, c] = [values(64 * 96, 41), values(64 * 96, 42), values(96, 43)];
    const res = await both(() => {
      const x = tf.tensor2d(a, [64, 96]), y = tf.tensor2d(b, [64, 96]), bias = tf.tensor1d(c), s = tf.scalar(-1.5);
      const odd = tf.tensor1d(a.slice(0, 4099)), odd2 = tf.tensor1d(b.slice(0, 4099));
      return [f(x, y), f(x, s), f(s, x), f(x, bias), f(bias, x), f(odd, odd2), f(x.reshape([8, 8, 96]), bias.reshape([1, 1, 96]))];
    });
    same(res.cpu, res.wasm);
  });

  it('Relu, Step, Square, Sqrt (and Step with alpha, left to the stock kernel)', async () => {
    const a = values(128 * 40, 44);
    const res = await both(() => {
      const x = tf.tensor2d(a, [128, 40]);
      return [tf.relu(x), tf.step(x), tf.step(x, 0.5), tf.square(x), tf.sqrt(x), tf.sqrt(tf.abs(x))];
    });
    same(res.cpu, res.wasm);
  });
});

describe('other kernels match cpu', () => {
  it('MaxPool ignores NaN and keeps the first of tied maxima, like cpu', async () => {
    const v = randoms(2 * 8 * 8 * 4, 9).map((x, i) => (i % 7 === 0 ? NaN : i % 5 === 0 ? -0 : Math.round(x * 2)));
    const res = await both(() => tf.maxPool(tf.tensor4d(v, [2, 8, 8, 4]), 2, 2, 'valid'));
    expect(Array.from(res.wasm[0])).toEqual(Array.from(res.cpu[0]));
  });

  it('Sign is exact for tiny values', async () => {
    const v = [-1e-7, 1e-7, -1e-30, 1e-30, 0, -0, 3, -2, NaN, Infinity, -Infinity, -1e-45];
    const res = await both(() => tf.sign(tf.tensor1d(v)));
    expect(Array.from(res.wasm[0])).toEqual([-1, 1, -1, 1, 0, 0, 1, -1, 0, 1, -1, -1]);
    expect(Array.from(res.wasm[0])).toEqual(Array.from(res.cpu[0]));
  });

  // [shape, filter, stride, pad, integer-valued (ties)]
  it.each([
    [[2, 26, 26, 8], 2, 2, 'valid', false], [[3, 11, 11, 4], 2, 2, 'valid', false], [[2, 8, 8, 4], 2, 2, 'valid', true],
    [[2, 9, 7, 3], 3, 2, 'same', true], [[1, 7, 7, 5], 2, 2, 'valid', true], [[2, 9, 9, 4], 3, 1, 'same', false],
  ] as Array<[[number, number, number, number], number, number, 'valid' | 'same', boolean]>)(
    'MaxPoolGrad %j f%i s%i %s ties=%s', async (shape, f, s, pad, ties) => {
      const xv = randoms(shape.reduce((p, d) => p * d, 1), 6).map((v) => (ties ? Math.round(v * 2) : v));
      const res = await both(() => {
        const x = tf.tensor4d(xv, shape);
        const y = tf.maxPool(x, f, s, pad);
        return [y, tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, f, s, pad).mul(tf.tensor(randoms(y.size, 7), y.shape)).sum())(x)];
      });
      expectClose(res.cpu, res.wasm, 1e-6);
    });

  it('Sum over leading axes, Identity, Cast, BatchMatMul with transposes', async () => {
    const v = randoms(4 * 6 * 5 * 8, 8);
    const res = await both(() => {
      const x = tf.tensor4d(v, [4, 6, 5, 8]);
      const m = tf.tensor2d(v.slice(0, 48), [6, 8]), n = tf.tensor2d(v.slice(48, 88), [5, 8]);
      return [tf.sum(x, [0, 1, 2]), tf.sum(x, [1, 0], true), tf.sum(x.reshape([120, 8]).slice([0, 0], [120, 7]), 0),
        tf.sum(x, -1), tf.sum(x), tf.clone(x), tf.cast(x, 'float32'), tf.cast(x.mul(3), 'int32'),
        tf.matMul(m, n, false, true), tf.matMul(m, m, true, false), tf.matMul(n, tf.tensor2d(v.slice(0, 15), [3, 5]), true, true)];
    });
    expectClose(res.cpu, res.wasm, 1e-5);
  });

  it('shared Identity/Cast outputs outlive their input', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x), z = tf.cast(x, 'float32');
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(z.dataSync())).toEqual([1, 2, 3]);
    tf.dispose([y, z]);
  });
});

describe('training steps match cpu', () => {
  const cnn = (): tf.Sequential => tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [16, 16, 1], filters: 8, kernelSize: 3, activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dropout({ rate: 0.5, seed: 7 }),
    tf.layers.dense({ units: 10 }),
  ] });
  const mlp = (): tf.Sequential => tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [20], units: 32, activation: 'relu' }),
    tf.layers.dense({ units: 10 }),
  ] });

  /** Loss, gradients of all weights, weights after one Adam step, and the input gradient. */
  async function step(build: () => tf.Sequential, inShape: number[]): Promise<Record<Backend, Float32Array[]>> {
    const batch = inShape[0];
    const xv = randoms(inShape.reduce((p, d) => p * d, 1), 11).map((v) => (v + 1) / 2);
    const labels = Array.from({ length: batch }, (_, i) => (i * 7) % 10);
    let weights: Float32Array[] | undefined;
    const res = {} as Record<Backend, Float32Array[]>;
    for (const b of ['cpu', 'wasm'] as const) {
      await tf.setBackend(b);
      const model = build();
      if (weights) model.setWeights(weights.map((w, i) => tf.tensor(w, model.getWeights()[i].shape)));
      else weights = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
      const x = tf.tensor(xv, inShape), y = tf.oneHot(tf.tensor1d(labels, 'int32'), 10);
      const loss = (input: tf.Tensor): tf.Scalar =>
        tf.losses.softmaxCrossEntropy(y, model.apply(input, { training: true }) as tf.Tensor) as tf.Scalar;
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(() => loss(x), vars);
      const dx = tf.grad(loss)(x);
      (tf.train.adam(1e-3) as tf.Optimizer).applyGradients(grads);
      res[b] = [value, ...vars.map((v) => grads[v.name]), ...vars, dx].map((t) => Float32Array.from(t.dataSync()));
    }
    return res;
  }

  it('CNN (conv-relu-pool x2, dropout, dense; Adam)', async () => {
    const res = await step(cnn, [6, 16, 16, 1]);
    expectClose(res.cpu, res.wasm);
    // FGSM uses sign(dx): it must agree wherever the gradient is not vanishingly small.
    const [gc, gw] = [res.cpu.at(-1)!, res.wasm.at(-1)!];
    const big = gc.reduce((m, v) => Math.max(m, Math.abs(v)), 0) * 1e-4;
    let agree = 0, checked = 0;
    gc.forEach((v, i) => {
      if (Math.abs(v) > big) { checked++; if (Math.sign(v) === Math.sign(gw[i])) agree++; }
    });
    expect(checked).toBeGreaterThan(gc.length / 2);
    expect(agree).toBe(checked);
  });

  it('MLP (dense-relu-dense; Adam)', async () => {
    expectClose(...Object.values(await step(mlp, [8, 20])) as [Float32Array[], Float32Array[]]);
  });
});
