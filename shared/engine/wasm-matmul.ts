/**
 * Matrix products on the wasm backend: BatchMatMul and _FusedMatMul (bias, relu) of dense layers
 * through the pool's GEMM tiles when big enough, XNNPACK otherwise (wasm-conv.ts has the tiles' use
 * for convolutions).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { callStock, free, matrixAsImage, product, roundUp, run, type Attrs, type TensorInfo } from './wasm-conv.js';
import { NR } from './wasm-modules.js';
import { kernelCall, offset, poolFor, SHARE_MIN_MACS, type Call, type Pool } from './wasm-pool.js';

type Args = { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Attrs };

/**
 * BatchMatMul: big enough 2-D products on the tiles; the rest on XNNPACK, which the stock kernel uses
 * only without transposes (with one it falls back to a naive loop), so a transposed operand is
 * transposed first.
 */
export function makeBatchMatMul(stock: tf.KernelFunc) {
  const batchMatMul = (args: Args): TensorInfo => {
    const { inputs: { a, b }, backend, attrs } = args;
    const call = (x: TensorInfo, y: TensorInfo, ta: boolean, tb: boolean): TensorInfo =>
      stock({ inputs: { a: x, b: y }, backend, attrs: { ...attrs, transposeA: ta, transposeB: tb } } as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;
    const flat = flatBatch(args, batchMatMul);
    if (flat) return flat;
    if (a.shape.length !== 2 || b.shape.length !== 2) return call(a, b, !!attrs.transposeA, !!attrs.transposeB);
    const kit = gemmKit(backend, a, b, attrs);
    if (kit) return viaGemm(backend, kit, a, b, attrs);
    if (!(attrs.transposeA || attrs.transposeB)) return call(a, b, false, false);
    const t = (x: TensorInfo, yes: unknown): TensorInfo => (yes ? run(backend, 'Transpose', { x }, { perm: [1, 0] }) : x);
    const at = t(a, attrs.transposeA), bt = t(b, attrs.transposeB);
    const out = call(at, bt, false, false);
    if (at !== a) free(backend, at);
    if (bt !== b) free(backend, bt);
    return out;
  };
  return batchMatMul;
}

/** Drops the batch axis of a batch of one (fused dense layers pass [1, m, k]): a plain product. */
function flatBatch(args: Args, inner: (a: Args) => TensorInfo): TensorInfo | null {
  const { inputs, backend } = args;
  const { a, b } = inputs;
  if (!(a.shape.length === 3 && b.shape.length === 3 && a.shape[0] === 1 && b.shape[0] === 1)) return null;
  const flat = (x: TensorInfo): TensorInfo => run(backend, 'Reshape', { x }, { shape: x.shape.slice(1) });
  const [a2, b2] = [flat(a), flat(b)];
  const out2 = inner({ ...args, inputs: { ...inputs, a: a2, b: b2 } });
  const out = run(backend, 'Reshape', { x: out2 }, { shape: [1, ...out2.shape] });
  free(backend, a2, b2, out2);
  return out;
}

/** The pool when this 2-D product is worth the GEMM tiles (dense layers of 100s of units), else null. */
function gemmKit(backend: BackendWasm, a: TensorInfo, b: TensorInfo, attrs: Attrs): Pool | null {
  const [m, k] = attrs.transposeA ? [a.shape[1], a.shape[0]] : a.shape, n = attrs.transposeB ? b.shape[0] : b.shape[1];
  const ok = a.dtype === 'float32' && b.dtype === 'float32' && n % 8 === 0 && (attrs.transposeA ? m : k) % 4 === 0 && m * n * k >= 1 << 20;
  return ok ? poolFor(backend) : null;
}

/** op(A) op(B) [+ bias] [relu] through the tiles (B transposed first when asked). */
function viaGemm(backend: BackendWasm, kit: Pool, a: TensorInfo, b: TensorInfo, attrs: Attrs, bias?: TensorInfo, relu = false): TensorInfo {
  const bt = attrs.transposeB ? run(backend, 'Transpose', { x: b }, { perm: [1, 0] }) : b;
  const out = matMulGemm(backend, kit, a, bt, !!attrs.transposeA, bias, relu);
  if (bt !== b) free(backend, bt);
  return out;
}

export function makeFusedMatMul(stock: tf.KernelFunc) {
  const fused = (args: Args): TensorInfo => {
    const { inputs: { a, b, bias, preluActivationWeights }, backend, attrs } = args;
    const act = (attrs.activation as string | undefined) ?? 'linear';
    const [a2, b2] = [a, b].map((t) => (t.shape.length === 3 && t.shape[0] === 1 ? { ...t, shape: t.shape.slice(1) } : t));
    const n = attrs.transposeB ? b2.shape[0] : b2.shape[1];
    const plain = a2.shape.length === 2 && b2.shape.length === 2 && preluActivationWeights == null && (act === 'linear' || act === 'relu')
      && (bias == null || (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === n));
    // The stock kernel wants the op's own (3-D) inputs: it gets them untouched whenever the tiles decline.
    const kit = plain ? gemmKit(backend, a2, b2, attrs) : null;
    if (!kit) return callStock(stock, args);
    return flatBatch(args, (flat) => viaGemm(backend, kit, flat.inputs.a, flat.inputs.b, attrs, bias ?? undefined, act === 'relu'))
      ?? viaGemm(backend, kit, a, b, attrs, bias ?? undefined, act === 'relu');
  };
  return fused;
}

/**
 * C = op(A) B [+ bias] [relu] for row-major B (k x n), A row-major m x k or, with `ta`, k x m (a dense
 * layer's weight gradient x^T dy, packed without a transpose); n a multiple of 8, k (or m with `ta`) of 4.
 * Rows of C are split in two parts.
 */
export function matMulGemm(backend: BackendWasm, kit: Pool, a: TensorInfo, b: TensorInfo, ta = false,
  bias?: TensorInfo, relu = false): TensorInfo {
  const [m, k] = ta ? [a.shape[1], a.shape[0]] : a.shape, n = b.shape[1];
  const out = backend.makeOutput([m, n], 'float32');
  const half = roundUp(Math.ceil(m / 2));
  const parts = [[0, Math.min(m, half)], [half, m]].filter(([s, e]) => e > s);
  const scratch = backend.makeOutput([k * n + parts.length * half * k], 'float32');
  const [ao, bo, co, bp] = [a, b, out, scratch].map((t) => offset(backend, t));
  const po = bp + k * n * 4;
  // B into contiguous 8-column panels first (each thread half of them): strided rows of a wide B
  // cost more in cache and TLB misses than this copy.
  const panels = n / NR, split = Math.ceil(panels / 2);
  const share = m * n * k >= SHARE_MIN_MACS;
  kit.run([[kernelCall('panel8', { src: bo, dst: bp, kn: k, panels: split, srcRow: n * 4 })],
    [kernelCall('panel8', { src: bo + split * 32, dst: bp + split * k * 32, kn: k, panels: panels - split, srcRow: n * 4 })]], share);
  const g = { b: bp, n, kn: k, bRow: NR * 4, bPanel: k * NR * 4, mode: bias ? 2 : 0, bias: bias ? offset(backend, bias) : 0, relu };
  kit.run(parts.map(([s, e], part): Call[] => {
    const p = po + part * half * k * 4;
    // With ta, A's k rows hold this part's columns s..e of m: im2colT packs them as panels of 4 taps.
    const pack = ta ? kernelCall('im2colT', { x: ao + s * 4, dst: p, ...matrixAsImage(k, (e - s) * 4, m * 4), panelBytes: k * 16 })
      : kernelCall('im2col4', { x: ao + s * k * 4, dst: p, ...matrixAsImage(e - s, k * 4), count: e - s });
    return [pack, ...product(e - s, p, co + s * n * 4, n * 4, g)];
  }), share);
  free(backend, scratch);
  return out;
}
