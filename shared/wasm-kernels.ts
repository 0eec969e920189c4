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
  const kit = simdFor(backend);
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

/** Filter gradient for layers with few taps (KH*KW*Cin small, e.g. a first layer), via FILTER_GRAD. */
const SMALL_K = 48;
function filterGradSmall(backend: BackendWasm, kit: Simd, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const { batchSize: nb, inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, padInfo: p } = info;
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
  const padded = p.top || p.bottom || p.left || p.right;
  const xp = padded ? run(backend, 'PadV2', { x }, { paddings: [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]], constantValue: 0 }) : x;
  const rowBytes = (w + p.left + p.right) * ci * 4, imgBytes = (h + p.top + p.bottom) * rowBytes;
  const out = backend.makeOutput([kh, kw, ci, co], 'float32');
  const part = backend.typedArrayFromHeap(out);
  const acc = new Float64Array(part.length); // per-image float32 partial sums, totalled in float64
  const [xo, dyo, o] = [xp, dy, out].map((t) => backend.getMemoryOffset(t.dataId));
  for (let b = 0; b < nb; b++) {
    part.fill(0);
    kit.filterGradImage(xo + b * imgBytes, dyo + b * oh * ow * co * 4, o, oh, ow, kh, kw, ci, rowBytes, sw * ci * 4, sh * rowBytes, co * 4);
    for (let i = 0; i < acc.length; i++) acc[i] += part[i];
  }
  part.set(acc);
  if (xp !== x) free(backend, xp);
  return out;
}

/** Input gradient for layers with few taps (dx of a first layer, for input gradients), via INPUT_GRAD. */
function inputGradSmall(backend: BackendWasm, kit: Simd, dy: TensorInfo, filter: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const { batchSize: nb, inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, padInfo: p } = info;
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
  const hp = h + p.top + p.bottom, wp = w + p.left + p.right;
  const full = backend.makeOutput([nb, hp, wp, ci], 'float32');
  backend.typedArrayFromHeap(full).fill(0);
  const rowBytes = wp * ci * 4;
  const [dyo, wo, o] = [dy, filter, full].map((t) => backend.getMemoryOffset(t.dataId));
  for (let b = 0; b < nb; b++) {
    kit.inputGradImage(dyo + b * oh * ow * co * 4, wo, o + b * hp * rowBytes, oh, ow, kh, kw, ci, rowBytes, sw * ci * 4, sh * rowBytes, co * 4);
  }
  if (hp === h && wp === w) return full;
  const out = run(backend, 'Slice', { x: full }, { begin: [0, p.top, p.left, 0], size: [nb, h, w, ci] });
  free(backend, full);
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
  const kit = simdFor(backend);
  if (kit && info.dataFormat === 'channelsLast' && kh * kw * info.inChannels <= SMALL_K && co % 4 === 0) {
    return inputGradSmall(backend, kit, dy, filter, info);
  }
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

// ---------------------------------------------------------------------------------------------
// Two SIMD loops the stock binary lacks, hand-assembled (no wasm toolchain in the project) into a
// module that imports the backend's own memory, so they work in place on tensor data. A scalar JS
// loop over the heap is ~10x slower on this hardware.
// ---------------------------------------------------------------------------------------------
const leb = (n: number): number[] => {
  const out: number[] = [];
  do { out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>>= 7; } while (n);
  return out;
};
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const bytes = (t: string): number[] => vec([...t].map((ch) => [ch.charCodeAt(0)]));
const get = (i: number): number[] => [0x20, i];
const set = (i: number): number[] => [0x21, i];
const i32 = (v: number): number[] => [0x41, ...leb(v)]; // small non-negative constants only
const [ADD, MUL] = [0x6a, 0x6c];
const simd = (op: number, mem = false): number[] => [0xfd, ...leb(op), ...(mem ? [2, 0] : [])];
const [LOAD, STORE, EQ, AND, ANDNOT, FADD, FMUL, SPLAT] =
  [simd(0x00, true), simd(0x0b, true), simd(0x41), simd(0x4e), simd(0x4f), simd(0xe4), simd(0xe6), simd(0x13)];
const [LOAD_F32, STORE_F32, ADD_F32] = [[0x2a, 2, 0], [0x38, 2, 0], [0x92]];
const lane = (i: number): number[] => [...simd(0x1f), i]; // f32x4.extract_lane
/** for (i = 0; i < n; i += step) body */
const loop = (i: number, n: number, step: number, body: number[]): number[] => [
  ...i32(0), ...set(i), 0x02, 0x40, 0x03, 0x40, ...get(i), ...get(n), 0x4f, 0x0d, 1,
  ...body, ...get(i), ...i32(step), ADD, ...set(i), 0x0c, 0, 0x0b, 0x0b];

// maxPoolRow(x, y, g, dx, ow, fh, fw, c, rowBytes): one row of non-overlapping windows. Per 4 channels,
// `rem` holds dy until the first position equal to the max takes it (cpu semantics for ties).
// locals: 9 q, 10 k, 11 i, 12 j, 13 off, 14 pv, 15 base | v128: 16 yv, 17 rem, 18 hit
const MAXPOOL_ROW = [...vec([[7, 0x7f], [3, 0x7b]]), ...loop(9, 4, 1, loop(10, 7, 4, [
  ...get(9), ...get(7), MUL, ...get(10), ADD, ...i32(4), MUL, ...set(14),
  ...get(1), ...get(14), ADD, ...LOAD, ...set(16), ...get(2), ...get(14), ADD, ...LOAD, ...set(17),
  ...get(9), ...get(6), MUL, ...get(7), MUL, ...get(10), ADD, ...i32(4), MUL, ...set(15),
  ...loop(11, 5, 1, loop(12, 6, 1, [
    ...get(11), ...get(8), MUL, ...get(15), ADD, ...get(12), ...get(7), MUL, ...i32(4), MUL, ADD, ...set(13),
    ...get(0), ...get(13), ADD, ...LOAD, ...get(16), ...EQ, ...set(18),
    ...get(3), ...get(13), ADD, ...get(17), ...get(18), ...AND, ...STORE,
    ...get(17), ...get(18), ...ANDNOT, ...set(17)])),
])), 0x0b];
// sumRows(src, rows, rowBytes, dst): dst[i] += sum_r src[r][i], reading src once in order.
// locals: 4 r, 5 i, 6 p
const SUM_ROWS = [...vec([[3, 0x7f]]), ...get(0), ...set(6), ...loop(4, 1, 1, [
  ...loop(5, 2, 16, [...get(3), ...get(5), ADD, ...get(3), ...get(5), ADD, ...LOAD,
    ...get(6), ...get(5), ADD, ...LOAD, ...FADD, ...STORE]),
  ...get(6), ...get(2), ADD, ...set(6)]), 0x0b];

// filterGradImage(x, dy, out, oh, ow, kh, kw, ci, rowBytes, colStep, rowStep, coBytes): for one image,
// out[kh][kw][ci][:] += sum_{r,q} x[r*s+kh][q*s+kw][ci] * dy[r][q][:] (x already padded). For layers
// with few taps (first layer): XNNPACK would have to repack all of dy as GEMM weights first, which
// costs more than this loop that streams dy once.
// locals: 12 r, 13 q, 14 a, 15 bb, 16 c, 17 j, 18 dyRow, 19 xPix, 20 outRow | v128: 21 s
const FILTER_GRAD = [...vec([[9, 0x7f], [1, 0x7b]]), ...loop(12, 3, 1, loop(13, 4, 1, [
  ...get(1), ...get(12), ...get(4), MUL, ...get(13), ADD, ...get(11), MUL, ADD, ...set(18),
  ...get(0), ...get(12), ...get(10), MUL, ADD, ...get(13), ...get(9), MUL, ADD, ...set(19),
  ...get(2), ...set(20),
  ...loop(14, 5, 1, loop(15, 6, 1, loop(16, 7, 1, [
    ...get(19), ...get(14), ...get(8), MUL, ADD, ...get(15), ...get(7), MUL, ...get(16), ADD, ...i32(4), MUL, ADD,
    ...LOAD_F32, ...SPLAT, ...set(21),
    ...loop(17, 11, 16, [...get(20), ...get(17), ADD, ...get(20), ...get(17), ADD, ...LOAD,
      ...get(21), ...get(18), ...get(17), ADD, ...LOAD, ...FMUL, ...FADD, ...STORE]),
    ...get(20), ...get(11), ADD, ...set(20)]))),
])), 0x0b];

// inputGradImage(dy, w, dx, oh, ow, kh, kw, ci, rowBytes, colStep, rowStep, coBytes): the transpose of
// FILTER_GRAD for one image: dx[r*s+kh][q*s+kw][ci] += dot(dy[r][q][:], w[kh][kw][ci][:]) (dx padded,
// zeroed). XNNPACK handles a convolution with one output channel (dx of a first layer) poorly.
// locals: 12 r, 13 q, 14 a, 15 bb, 16 c, 17 j, 18 dyRow, 19 xPix, 20 wRow, 21 xTap | v128: 22 acc
const INPUT_GRAD = [...vec([[10, 0x7f], [1, 0x7b]]), ...loop(12, 3, 1, loop(13, 4, 1, [
  ...get(0), ...get(12), ...get(4), MUL, ...get(13), ADD, ...get(11), MUL, ADD, ...set(18),
  ...get(2), ...get(12), ...get(10), MUL, ADD, ...get(13), ...get(9), MUL, ADD, ...set(19),
  ...get(1), ...set(20),
  ...loop(14, 5, 1, loop(15, 6, 1, loop(16, 7, 1, [
    ...simd(0x0c), ...Array(16).fill(0), ...set(22),
    ...loop(17, 11, 16, [...get(22), ...get(18), ...get(17), ADD, ...LOAD, ...get(20), ...get(17), ADD, ...LOAD,
      ...FMUL, ...FADD, ...set(22)]),
    ...get(19), ...get(14), ...get(8), MUL, ADD, ...get(15), ...get(7), MUL, ...get(16), ADD, ...i32(4), MUL, ADD, ...set(21),
    ...get(21), ...get(21), ...LOAD_F32, ...get(22), ...lane(0), ADD_F32[0], ...get(22), ...lane(1), ADD_F32[0],
    ...get(22), ...lane(2), ADD_F32[0], ...get(22), ...lane(3), ADD_F32[0], ...STORE_F32,
    ...get(20), ...get(11), ADD, ...set(20)]))),
])), 0x0b];

interface Simd {
  inputGradImage(...a: number[]): void;
  filterGradImage(...a: number[]): void;
  maxPoolRow(...a: number[]): void;
  sumRows(src: number, rows: number, rowBytes: number, dst: number): void;
}
const simdCache = new WeakMap<object, Simd | null>();

function simdFor(backend: BackendWasm): Simd | null {
  if (simdCache.has(backend)) return simdCache.get(backend) ?? null;
  const m = backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  const mem = m.wasmMemory ?? m.asm?.memory;
  let kit: Simd | null = null;
  if (mem) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && mem.buffer instanceof SharedArrayBuffer;
    const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
    const body = (code: number[]): number[] => [...leb(code.length), ...code];
    const wasm = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
      ...section(1, vec([9, 4, 12].map((n) => [0x60, ...vec(Array(n).fill([0x7f])), 0]))),
      ...section(2, vec([[...bytes('env'), ...bytes('mem'), 2, ...(shared ? [3, 1, ...leb(65536)] : [0, 1])]])),
      ...section(3, vec([[0], [1], [2], [2]])),
      ...section(7, vec(['maxPoolRow', 'sumRows', 'filterGradImage', 'inputGradImage'].map((name, i) => [...bytes(name), 0, i]))),
      ...section(10, vec([body(MAXPOOL_ROW), body(SUM_ROWS), body(FILTER_GRAD), body(INPUT_GRAD)]))]);
    try {
      kit = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem } }).exports as unknown as Simd;
    } catch (e) {
      console.warn(`wasm: SIMD helpers unavailable (${String(e)}); using JS loops`);
    }
  }
  simdCache.set(backend, kit);
  return kit;
}

/**
 * Max-pool gradient routed to the first maximum of each window, like the cpu kernel. The stock wasm
 * kernel starts its running max at FLT_MIN (all-negative windows pick position 0), takes the last of
 * tied maxima, and is slow.
 */
function maxPoolGrad(args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo {
  const { inputs: { dy, input, output }, backend, attrs } = args;
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, attrs.filterSize as [number, number],
    attrs.strides as [number, number], 1, attrs.pad as Pad, attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined);
  const { batchSize: nb, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, padInfo: p } = info;
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = backend.typedArrayFromHeap(out);
  const kit = simdFor(backend);
  // Fast path: windows tile the input without overlap or padding (the usual 2x2/2 pooling).
  const tiles = sh === fh && sw === fw && p.top === 0 && p.left === 0 && oh * fh <= h && ow * fw <= w;
  if (kit && tiles && c % 4 === 0 && output != null) {
    if (oh * fh !== h || ow * fw !== w) dx.fill(0); // rows/cols no window covers get no gradient
    const [xp, yp, gp, dp] = [input, output, dy, out].map((t) => backend.getMemoryOffset(t.dataId));
    const rowBytes = w * c * 4, outRowBytes = ow * c * 4;
    for (let b = 0; b < nb; b++) {
      for (let r = 0; r < oh; r++) {
        const xo = (b * h + r * fh) * rowBytes, yo = (b * oh + r) * outRowBytes;
        kit.maxPoolRow(xp + xo, yp + yo, gp + yo, dp + xo, ow, fh, fw, c, rowBytes);
      }
    }
    return out;
  }
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  dx.fill(0);
  const best = new Float32Array(c), at = new Int32Array(c);
  for (let b = 0; b < nb; b++) {
    for (let r = 0; r < oh; r++) {
      const r0 = r * sh - p.top, r1 = Math.min(h, r0 + fh);
      for (let q = 0; q < ow; q++) {
        const q0 = q * sw - p.left, q1 = Math.min(w, q0 + fw);
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
    const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
    const shape = attrs.keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k);
    const out = backend.makeOutput(shape, 'float32');
    const dst = backend.typedArrayFromHeap(out);
    const acc = new Float64Array(inner);
    const kit = simdFor(backend);
    if (kit && inner % 4 === 0) {
      // float32 partial sums over blocks of rows, accumulated in float64 here (cpu sums in float64).
      const block = Math.max(1, Math.floor(16384 / inner));
      const src = backend.getMemoryOffset(x.dataId), dp = backend.getMemoryOffset(out.dataId);
      for (let r = 0; r < rows; r += block) {
        dst.fill(0);
        kit.sumRows(src + r * inner * 4, Math.min(block, rows - r), inner * 4, dp);
        for (let i = 0; i < inner; i++) acc[i] += dst[i];
      }
    } else {
      const src = backend.typedArrayFromHeap(x);
      for (let o = 0; o < src.length; o += inner) {
        for (let i = 0; i < inner; i++) acc[i] += src[o + i];
      }
    }
    dst.set(acc);
    return out;
  };
}

/**
 * The stock BatchMatMul runs XNNPACK only without transposes; with one it falls back to a naive
 * loop (dense-layer gradients). Transposing the operand first keeps it on XNNPACK.
 */
function makeBatchMatMul(stock: tf.KernelFunc) {
  return (args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo => {
    const { inputs: { a, b }, backend, attrs } = args;
    const call = (x: TensorInfo, y: TensorInfo, ta: boolean, tb: boolean): TensorInfo =>
      stock({ inputs: { a: x, b: y }, backend, attrs: { ...attrs, transposeA: ta, transposeB: tb } } as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
    const flat = (t: TensorInfo): boolean => t.shape.length === 2 || (t.shape.length === 3 && t.shape[0] === 1);
    if (!(attrs.transposeA || attrs.transposeB) || !flat(a) || !flat(b)) return call(a, b, !!attrs.transposeA, !!attrs.transposeB);
    const t = (x: TensorInfo, yes: unknown): TensorInfo => {
      if (!yes) return x;
      const [r, c] = x.shape.slice(-2);
      const x2 = run(backend, 'Reshape', { x }, { shape: [r, c] });
      const xt = run(backend, 'Transpose', { x: x2 }, { perm: [1, 0] });
      free(backend, x2);
      return xt;
    };
    const at = t(a, attrs.transposeA), bt = t(b, attrs.transposeB);
    const out = call(at, bt, false, false);
    if (at !== a) free(backend, at);
    if (bt !== b) free(backend, bt);
    return out;
  };
}

/** A cast to the same dtype is a no-op; the stock kernel copies the buffer. */
function makeCast(stock: tf.KernelFunc) {
  return (args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs }): TensorInfo => {
    const { inputs: { x }, backend, attrs } = args;
    if (x.dtype !== attrs.dtype || x.dtype === 'string') return stock(args as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/** The stock wasm Identity copies the buffer; sharing it (as the cpu backend and Reshape do) is free. */
function makeIdentity(stock: tf.KernelFunc) {
  return (args: { inputs: Record<string, TensorInfo>; backend: BackendWasm }): TensorInfo => {
    const { inputs: { x }, backend } = args;
    if (x.dtype === 'string') return stock(args as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
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
  // Wrappers that keep the stock kernel for the cases they do not speed up.
  for (const [name, wrap] of [['Sum', makeSum], ['Identity', makeIdentity], ['BatchMatMul', makeBatchMatMul], ['Cast', makeCast]] as const) {
    const stock = tf.getKernel(name, 'wasm');
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...stock, kernelFunc: wrap(stock.kernelFunc) as unknown as tf.KernelFunc });
  }
}
