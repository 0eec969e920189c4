/**
 * Kernels that make the TF.js `wasm` backend train CNNs correctly and fast (ARCHITECTURE.md, "Processes").
 * Usage: `await prepareWasm(threads)` (before `tf.setBackend('wasm')`), then `registerWasmKernels()`.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelCall, offset, poolFor, poolReady, type Pool } from './wasm-pool.js';
import { BINARY_KERNELS, UNARY_KERNELS, makeBinary, makeUnary } from './wasm-elementwise.js';
import { makeMaxPool, makeMaxPoolGrad, makeSum } from './wasm-windows.js';
import { makeBatchMatMul, makeFusedMatMul } from './wasm-matmul.js';
import {
  callStock, convFilterGrad, convForward, convInfo, convInputGrad, free, gemmPath, padded, run,
  type Attrs, type Shape4, type TensorInfo,
} from './wasm-conv.js';

export { prepareWasm, wasmThreads } from './wasm-threads.js';

/** Resolves once the pool's helper thread is up (results never depend on it; speed does). */
export async function wasmHelpersReady(): Promise<void> {
  if (tf.getBackend() === 'wasm') await poolReady(tf.backend() as BackendWasm);
}

/** Correct-but-slow path: run the cpu backend's kernel on copies of the data. */
function onCpu(backend: BackendWasm, name: string, inputs: Record<string, TensorInfo>, attrs: Attrs): TensorInfo {
  const cpu = tf.findBackend('cpu');
  const k = tf.getKernel(name, 'cpu');
  if (cpu == null || k == null) throw new Error(`cpu fallback for ${name} unavailable`);
  const cpuInputs: Record<string, TensorInfo> = {};
  for (const [key, t] of Object.entries(inputs)) {
    cpuInputs[key] = { dataId: cpu.write(backend.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
  }
  const r = k.kernelFunc({ inputs: cpuInputs, backend: cpu, attrs: attrs as tf.NamedAttrMap }) as TensorInfo;
  const out = backend.makeOutput(r.shape, r.dtype, undefined, cpu.readSync(r.dataId));
  for (const t of [...Object.values(cpuInputs), r]) cpu.disposeData(t.dataId);
  return out;
}

/**
 * dW[kh,kw,ci,co] = sum_{b,oh,ow} x[b, oh*s+kh-pt, ow*s+kw-pl, ci] * dy[b,oh,ow,co]: a forward conv
 * of x^T [Cin,H,W,B] (batch Cin, channels B) by dy^T [OH,OW,B,Cout] with dilation s, same padding.
 */
function conv2DBackpropFilter(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  const info = convInfo(x.shape as Shape4, attrs.filterShape as Shape4, attrs);
  if (info.dataFormat !== 'channelsLast') return onCpu(backend, 'Conv2DBackpropFilter', inputs, attrs);
  const { filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co, padInfo: p } = info;
  const gemm = gemmPath(backend, info, 'filter');
  if (gemm) return convFilterGrad(backend, gemm, x, dy, info);
  const kit = poolFor(backend);
  if (kit && kh * kw * ci <= SMALL_K && co % 4 === 0) return filterGradSmall(backend, kit, x, dy, info);
  const xT = run(backend, 'Transpose', { x }, { perm: [3, 1, 2, 0] });
  const dyT = run(backend, 'Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
  const g = run(backend, 'Conv2D', { x: xT, filter: dyT }, {
    strides: 1, dilations: [info.strideHeight, info.strideWidth], dataFormat: 'NHWC',
    pad: [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]],
  });
  free(backend, xT, dyT);
  let cut = g;
  // With stride > 1 the last input rows/cols may be unused by the forward: crop them off.
  if (g.shape[1] !== kh || g.shape[2] !== kw) {
    cut = run(backend, 'Slice', { x: g }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] });
    free(backend, g);
  }
  const out = run(backend, 'Transpose', { x: cut }, { perm: [1, 2, 0, 3] });
  free(backend, cut);
  return out;
}

/**
 * Filter gradient for layers with few taps and output channels a multiple of 4 but not of 8 (which the
 * GEMM tiles cover): filterGradImage per image, float32 partials totalled in float64 like the cpu kernel.
 */
const SMALL_K = 48;
function filterGradSmall(backend: BackendWasm, kit: Pool, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const { batchSize: nb, inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, padInfo: p } = info;
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
  const xp = padded(backend, x, info);
  const rowBytes = (w + p.left + p.right) * ci * 4, imgBytes = (h + p.top + p.bottom) * rowBytes;
  const out = backend.makeOutput([kh, kw, ci, co], 'float32');
  const part = backend.typedArrayFromHeap(out);
  const acc = new Float64Array(part.length); // per-image float32 partial sums, totalled in float64
  const [xo, dyo, o] = [xp, dy, out].map((t) => offset(backend, t));
  for (let b = 0; b < nb; b++) {
    part.fill(0);
    kit.run([[kernelCall('filterGradImage', {
      x: xo + b * imgBytes, dy: dyo + b * oh * ow * co * 4, out: o, oh, ow, kh, kw, ci, rowBytes,
      colStep: sw * ci * 4, rowStep: sh * rowBytes, coBytes: co * 4,
    })]]);
    for (let i = 0; i < acc.length; i++) acc[i] += part[i];
  }
  part.set(acc);
  if (xp !== x) free(backend, xp);
  return out;
}

/**
 * dx = "full" correlation of dy (zero-stuffed when stride > 1) with the filter reversed spatially and
 * in/out channels swapped, i.e. a forward conv padded by K-1-p.
 */
function conv2DBackpropInput(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs;
  const info = convInfo(attrs.inputShape as Shape4, filter.shape as Shape4, attrs);
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, padInfo: p } = info;
  const { batchSize: b, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const top = kh - 1 - p.top, left = kw - 1 - p.left;
  // Length of dy after zero-stuffing (trailing zeros included), and the far-side pads giving H x W.
  const lh = oh * sh, lw = ow * sw;
  const bottom = h + kh - 1 - top - lh, right = w + kw - 1 - left - lw;
  const gemm = gemmPath(backend, info, 'input');
  if (gemm) return convInputGrad(backend, gemm, dy, filter, info);
  if (info.dataFormat !== 'channelsLast' || top < 0 || left < 0 || bottom < 1 - sh || right < 1 - sw) {
    return onCpu(backend, 'Conv2DBackpropInput', inputs, attrs);
  }
  let src = dy;
  if (sh > 1 || sw > 1) {
    const r6 = run(backend, 'Reshape', { x: dy }, { shape: [b, oh, 1, ow, 1, co] });
    const z = run(backend, 'PadV2', { x: r6 }, {
      paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0,
    });
    src = run(backend, 'Reshape', { x: z }, { shape: [b, lh, lw, co] });
    free(backend, r6, z);
    if (bottom < 0 || right < 0) { // drop trailing zeros that the conv would otherwise read
      const s = run(backend, 'Slice', { x: src }, {
        begin: [0, 0, 0, 0], size: [b, lh + Math.min(bottom, 0), lw + Math.min(right, 0), co],
      });
      free(backend, src);
      src = s;
    }
  }
  const rev = run(backend, 'Reverse', { x: filter }, { dims: [0, 1] });
  const wT = run(backend, 'Transpose', { x: rev }, { perm: [0, 1, 3, 2] });
  const out = run(backend, 'Conv2D', { x: src, filter: wT }, {
    strides: 1, dilations: 1, dataFormat: 'NHWC',
    pad: [[0, 0], [top, Math.max(bottom, 0)], [left, Math.max(right, 0)], [0, 0]],
  });
  free(backend, rev, wT);
  if (src !== dy) free(backend, src);
  return out;
}

/** The stock wasm Sign flushes |x| < ~1e-6 to 0; match the cpu kernel exactly (NaN -> 0). */
function sign(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm }): TensorInfo {
  const { inputs: { x }, backend } = args;
  const out = backend.makeOutput(x.shape, x.dtype); // may grow (and detach) the heap: views after it
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    dst[i] = v > 0 ? 1 : v < 0 ? -1 : 0;
  }
  return out;
}

/**
 * Identity, and Cast to the same dtype, copy the buffer in the stock kernels; sharing it (as the cpu
 * backend and Reshape do) is free. Tensors are immutable, so sharing is safe.
 */
function makeShared(stock: tf.KernelFunc) {
  return (args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs?: Attrs }): TensorInfo => {
    const { inputs: { x }, backend, attrs } = args;
    if (x.dtype === 'string' || (attrs?.dtype != null && attrs.dtype !== x.dtype)) {
      return callStock(stock, args);
    }
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/**
 * Conv2D, and FusedConv2D with a bias and linear or relu activation, through im2col + GEMM where it
 * applies (wasm-conv.ts); the stock XNNPACK kernel otherwise (e.g. output channels not a multiple of 8).
 */
function makeConv(stock: tf.KernelFunc, fused: boolean) {
  return (args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo => {
    const { inputs: { x, filter, bias, preluActivationWeights }, backend, attrs } = args;
    const act = (attrs.activation as string | undefined) ?? 'linear';
    const plain = !fused || (preluActivationWeights == null && (act === 'linear' || act === 'relu')
      && (bias == null || tf.util.sizeFromShape(bias.shape) === filter.shape[3]));
    const info = convInfo(x.shape as Shape4, filter.shape as Shape4, attrs);
    const kit = plain && x.dtype === 'float32' ? gemmPath(backend, info, 'forward') : null;
    if (!kit) return callStock(stock, args);
    return convForward(backend, kit, x, filter, info, fused ? bias : undefined, fused && act === 'relu');
  };
}

// Kernel functions are typed loosely by tfjs-core (KernelFunc takes KernelBackend); ours need BackendWasm.
const KERNELS: Array<[string, (a: never) => TensorInfo]> = [
  ['Conv2DBackpropFilter', conv2DBackpropFilter],
  ['Conv2DBackpropInput', conv2DBackpropInput],
  ['Sign', sign],
  ['MaxPoolGrad', makeMaxPoolGrad((a) => onCpu(a.backend, 'MaxPoolGrad', a.inputs, a.attrs))],
];
let registered = false;

/** Registers the project's wasm kernels (idempotent). Call after `tf.setBackend('wasm')` resolves. */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, fn] of KERNELS) {
    if (tf.getKernel(kernelName, 'wasm') != null) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: fn as unknown as tf.KernelFunc });
  }
  // Wrappers that keep the stock kernel for the cases they do not speed up.
  const wrappers = [['Sum', makeSum], ['MaxPool', makeMaxPool], ['Identity', makeShared], ['Cast', makeShared], ['BatchMatMul', makeBatchMatMul], ['_FusedMatMul', makeFusedMatMul],
    ['Conv2D', (k: tf.KernelFunc) => makeConv(k, false)], ['FusedConv2D', (k: tf.KernelFunc) => makeConv(k, true)]] as const;
  const lanes = [...Object.entries(BINARY_KERNELS).map(([k, op]) => [k, (stock: tf.KernelFunc) => makeBinary(op, stock)] as const),
    ...Object.entries(UNARY_KERNELS).map(([k, op]) => [k, (stock: tf.KernelFunc) => makeUnary(op, stock)] as const)];
  for (const [name, wrap] of [...wrappers, ...lanes]) {
    const stock = tf.getKernel(name, 'wasm');
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...stock, kernelFunc: wrap(stock.kernelFunc) as unknown as tf.KernelFunc });
  }
}
