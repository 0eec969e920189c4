/**
 * Makes the TF.js `wasm` backend usable for training in Node (see DESIGN.md "Compute backend"):
 * - prepareWasm(): loads the threaded XNNPACK binary with working pthreads in Node (call before setBackend);
 * - registerWasmKernels(): adds the missing/broken kernels (conv gradients as forward convs, exact Sign).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { setWasmPaths, setThreadsCount, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { resolveObjectURL } from 'node:buffer';
import path from 'node:path';
import type { WorkerOptions } from 'node:worker_threads';

type TensorInfo = tf.TensorInfo;
type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Attrs = Record<string, unknown>;

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Threads. tfjs-backend-wasm 4.22 never uses pthreads in Node, for three reasons, each fixed here
// only while the backend initialises:
// 1. flag WASM_HAS_MULTITHREAD_SUPPORT is hard-wired false under IS_NODE -> we set it true;
// 2. Emscripten starts its 8 pool workers from blob: URLs (worker script and main script are
//    Blobs), which Node's Worker cannot load -> a Worker subclass evaluates the Blob contents;
// 3. the C++ side uses min(requested, logical_cores / 2) threads, i.e. 1 on a 2-core box ->
//    os.cpus() reports twice the requested count during init.
// ---------------------------------------------------------------------------------------------

// Runs inside each pthread worker (CommonJS, eval mode). The Emscripten glue was bundled by rollup,
// so its text refers to the bundle's hoisted `require$$N` / `commonjsGlobal` names: define them.
const WORKER_BOOTSTRAP = `
const { parentPort, workerData } = require('worker_threads');
Object.assign(globalThis, { commonjsGlobal: globalThis, require, require$$0: require('fs'),
  require$$1: require('path'), require$$3: require('perf_hooks'), require$$4: require('os') });
const fail = (e) => setImmediate(() => { throw e; });
(async () => {
  (0, eval)(await workerData.text());              // Emscripten's worker.js (sets self.onmessage)
  const importScripts0 = globalThis.importScripts;
  globalThis.importScripts = (f) => { if (f !== '__preloaded__') importScripts0(f); };
  parentPort.removeAllListeners('message');
  let chain = Promise.resolve();                    // keeps message order across the async load
  parentPort.on('message', (data) => {
    chain = chain.then(async () => {
      if (data && data.cmd === 'load' && typeof data.urlOrBlob !== 'string') {
        (0, eval)(await data.urlOrBlob.text());     // defines WasmBackendModuleThreadedSimd
        data.urlOrBlob = '__preloaded__';
      }
      globalThis.onmessage({ data });
    }).catch(fail);
  });
})().catch(fail);
`;

let prepared = false;

/**
 * Call once before `tf.setBackend('wasm')`. Points the backend at its .wasm files in node_modules and,
 * when threads > 1, arranges for the multi-threaded SIMD binary to start with that many threads.
 * If the threaded start fails, it falls back to the single-threaded binary.
 */
export async function prepareWasm(threads = 1): Promise<void> {
  if (prepared) return;
  prepared = true;
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(dist + path.sep);
  if (threads <= 1) return;
  if ('wasm' in tf.engine().registry) { // (findBackend() would initialise it)
    console.warn('wasm: backend already initialised before prepareWasm(); staying single-threaded');
    return;
  }
  const original = tf.findBackendFactory('wasm');
  if (original == null) throw new Error('wasm backend is not registered');
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    const restore = patchForPthreads(threads);
    try {
      return await original();
    } catch (e) {
      console.warn(`wasm: threaded start failed (${String(e)}); using one thread`);
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      setThreadsCount(1);
      return await original();
    } finally {
      restore();
    }
  }, 2 /* the package's WASM_PRIORITY */);
}

function patchForPthreads(threads: number): () => void {
  const wt = require('node:worker_threads') as typeof import('node:worker_threads');
  const os = require('node:os') as typeof import('node:os');
  const RealWorker = wt.Worker;
  const realCpus = os.cpus;
  const g = globalThis as { Worker?: unknown };
  const hadGlobalWorker = 'Worker' in g;
  const globalWorker = g.Worker;
  class PthreadWorker extends RealWorker {
    constructor(url: string | URL, opts?: WorkerOptions) {
      const blob = typeof url === 'string' && url.startsWith('blob:') ? resolveObjectURL(url) : undefined;
      if (blob) super(WORKER_BOOTSTRAP, { eval: true, workerData: blob });
      else super(url, opts);
    }
    // Pool threads park forever in XNNPACK's pthreadpool; they must not keep the process alive.
    override ref(): void {}
  }
  wt.Worker = PthreadWorker;
  os.cpus = () => {
    const cpus = realCpus();
    while (cpus.length < 2 * threads) cpus.push(cpus[0]);
    return cpus;
  };
  return () => {
    wt.Worker = RealWorker;
    os.cpus = realCpus;
    // Emscripten copies worker_threads.Worker to a global; all pool workers exist by now.
    if (hadGlobalWorker) g.Worker = globalWorker;
    else delete g.Worker;
  };
}

/** XNNPACK thread count of the initialised wasm backend (0 if it has not been initialised). */
export function wasmThreads(): number {
  try {
    return getThreadsCount();
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

/** Calls another wasm kernel directly (no tape, no engine bookkeeping). */
function run(backend: BackendWasm, name: string, inputs: Record<string, TensorInfo>, attrs: Attrs = {}): TensorInfo {
  const k = tf.getKernel(name, 'wasm');
  if (k == null) throw new Error(`wasm kernel ${name} missing`);
  return k.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as TensorInfo;
}

const free = (backend: BackendWasm, ...infos: TensorInfo[]): void => {
  for (const t of infos) backend.disposeData(t.dataId);
};

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

function convInfo(xShape: Shape4, filterShape: Shape4, attrs: Attrs): tf.backend_util.Conv2DInfo {
  const fmt = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat as 'NHWC' | 'NCHW');
  return tf.backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides as number | [number, number], 1,
    attrs.pad as Pad, attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined, false, fmt);
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
  const src = backend.typedArrayFromHeap(x);
  const out = backend.makeOutput(x.shape, x.dtype);
  const dst = backend.typedArrayFromHeap(out);
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    dst[i] = v > 0 ? 1 : v < 0 ? -1 : 0;
  }
  return out;
}

/**
 * Max-pool gradient routed to the first maximum of each window, like the cpu kernel. The stock wasm
 * kernel starts its running max at FLT_MIN (so all-negative windows pick position 0) and is ~10x slower.
 */
function maxPoolGrad(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo {
  const { inputs: { dy, input }, backend, attrs } = args;
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, attrs.filterSize as [number, number],
    attrs.strides as [number, number], 1, attrs.pad as Pad, attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined);
  const { batchSize: nb, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = backend.typedArrayFromHeap(out);
  dx.fill(0);
  const best = new Float32Array(c), at = new Int32Array(c);
  for (let b = 0; b < nb; b++) {
    for (let r = 0; r < oh; r++) {
      const r0 = r * sh - info.padInfo.top, r1 = Math.min(h, r0 + fh);
      for (let q = 0; q < ow; q++) {
        const q0 = q * sw - info.padInfo.left, q1 = Math.min(w, q0 + fw);
        best.fill(-Infinity);
        at.fill(-1);
        for (let xr = Math.max(r0, 0); xr < r1; xr++) {
          for (let xc = Math.max(q0, 0); xc < q1; xc++) {
            const base = ((b * h + xr) * w + xc) * c;
            for (let k = 0; k < c; k++) {
              const v = x[base + k];
              if (v > best[k]) { best[k] = v; at[k] = base + k; }
            }
          }
        }
        const gBase = ((b * oh + r) * ow + q) * c;
        for (let k = 0; k < c; k++) if (at[k] >= 0) dx[at[k]] += g[gBase + k];
      }
    }
  }
  return out;
}

/**
 * Sum over leading axes (bias gradients: dy summed over batch, rows, cols). The stock kernel first
 * transposes the reduced axes innermost, which costs ~10x the sum itself; other cases go to it.
 */
function makeSum(stock: tf.KernelFunc) {
  return (args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo => {
    const { inputs: { x }, backend, attrs } = args;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((a, b) => a - b);
    const k = axes.length;
    if (x.dtype !== 'float32' || k === 0 || k >= x.shape.length || axes[k - 1] !== k - 1) {
      return stock(args as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
    }
    const inner = tf.util.sizeFromShape(x.shape.slice(k));
    const src = backend.typedArrayFromHeap(x);
    const acc = new Float64Array(inner);
    for (let o = 0; o < src.length; o += inner) {
      for (let i = 0; i < inner; i++) acc[i] += src[o + i];
    }
    const shape = attrs.keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k);
    const out = backend.makeOutput(shape, 'float32');
    backend.typedArrayFromHeap(out).set(acc);
    return out;
  };
}

// Kernel functions are typed loosely by tfjs-core (KernelFunc takes KernelBackend); ours need BackendWasm.
const KERNELS: Array<[string, (a: never) => TensorInfo]> = [
  ['Conv2DBackpropFilter', conv2DBackpropFilter],
  ['Conv2DBackpropInput', conv2DBackpropInput],
  ['Sign', sign],
  ['MaxPoolGrad', maxPoolGrad],
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
  const stockSum = tf.getKernel('Sum', 'wasm');
  tf.unregisterKernel('Sum', 'wasm');
  tf.registerKernel({ ...stockSum, kernelFunc: makeSum(stockSum.kernelFunc) as unknown as tf.KernelFunc });
}
