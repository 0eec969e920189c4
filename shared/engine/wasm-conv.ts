/**
 * Convolutions and their gradients on the wasm backend as im2col + GEMM (shared/engine/kernels/patches.wat, gemm.wat), run by the
 * pool (wasm-pool.ts). The batch is cut into two fixed parts, one per thread; fixed, so results do not
 * depend on how many threads ran them. Each part goes through chunks whose packed patches fit in L2
 * while the product reads them.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { MR, NR, type KernelArgs } from './wasm-modules.js';
import { kernelCall, offset, poolFor, SHARE_MIN_CONV_MACS, twoParts, type Call, type Pool } from './wasm-pool.js';

export type TensorInfo = tf.TensorInfo;
export type Shape4 = [number, number, number, number];
export type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
export type Attrs = Record<string, unknown>;
type Info = tf.backend_util.Conv2DInfo;

/** Calls another wasm kernel directly (no tape, no engine bookkeeping). */
export function run(backend: BackendWasm, name: string, inputs: Record<string, TensorInfo>, attrs: Attrs = {}): TensorInfo {
  const k = tf.getKernel(name, 'wasm');
  if (k == null) throw new Error(`wasm kernel ${name} missing`);
  return k.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as TensorInfo;
}

/** The stock kernel a wrapper falls back to, called with the wrapper's own arguments. */
export const callStock = (stock: tf.KernelFunc, args: { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs?: Attrs }): TensorInfo =>
  stock(args as unknown as Parameters<tf.KernelFunc>[0]) as TensorInfo;

export const free = (backend: BackendWasm, ...infos: TensorInfo[]): void => {
  for (const t of infos) backend.disposeData(t.dataId);
};

export function convInfo(xShape: Shape4, filterShape: Shape4, attrs: Attrs): Info {
  const fmt = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat as 'NHWC' | 'NCHW');
  return tf.backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides as number | [number, number],
    (attrs.dilations as number | [number, number] | undefined) ?? 1, attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined, false, fmt);
}

const CHUNK_BYTES = 1 << 20;

export type Pass = 'forward' | 'filter' | 'input';
/** The GEMM kit when it handles this convolution's pass, else null. */
export function gemmPath(backend: BackendWasm, info: Info, pass: Pass): Pool | null {
  const co = info.outChannels;
  // Odd segment lengths (a first layer's kw*ci = 3) go through im2colS, one float at a time.
  const ok = info.dataFormat === 'channelsLast' && info.dilationHeight === 1 && info.dilationWidth === 1
    && (pass === 'input' ? co % 4 === 0 : co % NR === 0);
  return ok ? poolFor(backend) : null;
}

interface Gemm2 { b: number; n: number; kn: number; bRow: number; bPanel: number; mode?: number; bias?: number; relu?: boolean }

/**
 * C (m rows) = A B, A in panels of 4 rows (im2col4 / im2colT): A(i,k) at a + (i/4)*kn*16 + k*16 + (i%4)*4.
 * Whole panels go to gemm4, a last partial one (padded to 4 wide) to the kernel for its rows.
 */
export function product(m: number, a: number, c: number, cRow: number, g: Gemm2): Call[] {
  const full = m - (m % MR), calls: Call[] = [];
  const tile = {
    b: g.b, n: g.n, kn: g.kn, aRow: g.kn * 4, aK: MR * 4, bRow: g.bRow, bPanel: g.bPanel, cRow,
    mode: g.mode ?? 0, bias: g.bias ?? 0, relu: g.relu ? 1 : 0,
  };
  if (full > 0) calls.push(kernelCall(`gemm${MR}` as const, { ...tile, a, c, m: full }));
  if (m % MR) calls.push(kernelCall(`gemm${m % MR}` as 'gemm1', { ...tile, a: a + full * g.kn * 4, c: c + full * cRow, m: m % MR }));
  return calls;
}
export const roundUp = (n: number): number => Math.ceil(n / MR) * MR;

/** The batch's two fixed parts, and per part a list of [first, end) chunks. */
function chunks(nb: number, perImage: number): Array<Array<[number, number]>> {
  const size = Math.max(1, Math.floor(CHUNK_BYTES / perImage));
  return twoParts(nb).map(([s, e]) => {
    const list: Array<[number, number]> = [];
    for (let i = s; i < e; i += size) list.push([i, Math.min(e, i + size)]);
    return list;
  });
}

/** The patch kernels' geometry arguments (patches.wat), but for the addresses and image count. */
type Geometry = Omit<KernelArgs<'im2col4'>, 'x' | 'dst' | 'nb' | 'count'>;

/** Per-image geometry of the (padded) input, as im2col / col2im take it. */
function geometry(info: Info): { hp: number; wp: number; geo: Geometry; imgBytes: number } {
  const { inHeight: h, inWidth: w, inChannels: ci, filterHeight: kh, filterWidth: kw, padInfo: p } = info;
  const hp = h + p.top + p.bottom, wp = w + p.left + p.right;
  const rowBytes = wp * ci * 4, imgBytes = hp * rowBytes;
  const geo = {
    oh: info.outHeight, ow: info.outWidth, kh, rowBytes, segBytes: kw * ci * 4,
    colStep: info.strideWidth * ci * 4, rowStep: info.strideHeight * rowBytes, imgBytes,
  };
  return { hp, wp, imgBytes, geo };
}

/**
 * A row-major matrix as im2col input: one image whose one output row has `rows` 1x1 patches, each a
 * segment of segBytes, rowStride apart (segBytes unless only part of each row is packed).
 */
export const matrixAsImage = (rows: number, segBytes: number, rowStride = segBytes): Geometry & { nb: number } =>
  ({ nb: 1, oh: 1, ow: rows, kh: 1, rowBytes: 0, segBytes, colStep: rowStride, rowStep: 0, imgBytes: 0 });

/** x with the convolution's padding added (x itself when there is none). */
export function padded(backend: BackendWasm, x: TensorInfo, info: Info): TensorInfo {
  const p = info.padInfo;
  if (!(p.top || p.bottom || p.left || p.right)) return x;
  return run(backend, 'PadV2', { x }, { paddings: [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]], constantValue: 0 });
}

/** B panels of 8 columns, each k-major: dst[((j/8)*K + k)*8 + j%8] = src(k, j); zero for j >= n. */
function panels(backend: BackendWasm, K: number, N: number, src: TensorInfo, at: (k: number, j: number) => number, n = N): TensorInfo {
  const out = backend.makeOutput([K * N], 'float32');
  const s = backend.typedArrayFromHeap(src), d = backend.typedArrayFromHeap(out);
  if (n < N) d.fill(0);
  for (let j = 0; j < n; j++) {
    const base = Math.floor(j / NR) * K * NR + (j % NR);
    for (let k = 0; k < K; k++) d[base + k * NR] = s[at(k, j)];
  }
  return out;
}

/** y = conv(x, w) [+ bias] [relu]. */
export function convForward(backend: BackendWasm, kit: Pool, x: TensorInfo, filter: TensorInfo, info: Info,
  bias?: TensorInfo, relu = false): TensorInfo {
  const { batchSize: nb, outChannels: co, outHeight: oh, outWidth: ow } = info;
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const xp = padded(backend, x, info);
  const wp = panels(backend, taps, co, filter, (k, j) => k * co + j);
  const out = backend.makeOutput(info.outShape, 'float32');
  const { geo, imgBytes } = geometry(info);
  const aligned = (info.filterWidth * info.inChannels) % 4 === 0;
  const oneChannel = info.inChannels === 1 && info.strideWidth === 1;
  const plan = chunks(nb, oh * ow * taps * 4);
  const perPart = roundUp(Math.max(...plan.map((c) => c[0][1] - c[0][0])) * oh * ow) * taps * 4;
  const cols = backend.makeOutput([plan.length * perPart / 4], 'float32');
  const [xo, wo, yo, colo] = [xp, wp, out, cols].map((t) => offset(backend, t));
  const g = { b: wo, n: co, kn: taps, bRow: NR * 4, bPanel: taps * NR * 4, mode: bias ? 2 : 0, bias: bias ? offset(backend, bias) : 0, relu };
  kit.run(plan.map((list, part) => list.flatMap(([s, e]): Call[] => {
    const c = colo + part * perPart, m = (e - s) * oh * ow;
    const at = { x: xo + s * imgBytes, dst: c, nb: e - s, ...geo };
    const patches = aligned ? kernelCall('im2col4', { ...at, count: m })
      : oneChannel ? kernelCall('im2col1', { ...at, count: m })
        : kernelCall('im2colS', { ...at, P1: taps * 16, Q1: 4, P2: 64, Q2: 16, back: 0 });
    return [patches, ...product(m, c, yo + s * oh * ow * co * 4, co * 4, g)];
  })), nb * oh * ow * taps * co >= SHARE_MIN_CONV_MACS);
  free(backend, wp, cols);
  if (xp !== x) free(backend, xp);
  return out;
}

/** dW[tap][co] = sum over pixels of im2col(x)[pixel][tap] * dy[pixel][co]; one partial sum per part. */
export function convFilterGrad(backend: BackendWasm, kit: Pool, x: TensorInfo, dy: TensorInfo, info: Info): TensorInfo {
  const { batchSize: nb, outChannels: co, outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw, inChannels: ci } = info;
  const taps = kh * kw * ci, aligned = (kw * ci) % 4 === 0;
  const xp = padded(backend, x, info);
  const out = backend.makeOutput([kh, kw, ci, co], 'float32');
  const plan = chunks(nb, oh * ow * roundUp(taps) * 4);
  const partial = backend.makeOutput([taps * co], 'float32');
  const images = Math.max(...plan.map((c) => c[0][1] - c[0][0]));
  const perPart = images * oh * ow * (roundUp(taps) + co) * 4;
  const cols = backend.makeOutput([plan.length * perPart / 4], 'float32');
  const { geo, imgBytes } = geometry(info);
  const [xo, dyo, oo, po, colo] = [xp, dy, out, partial, cols].map((t) => offset(backend, t));
  // Per chunk: x's patches as A panels of 4 taps, dy's rows as B panels of 8 channels, then A^T B.
  kit.run(plan.map((list, part) => list.flatMap(([s, e], i): Call[] => {
    const c = colo + part * perPart, kn = (e - s) * oh * ow, bp = c + images * oh * ow * roundUp(taps) * 4;
    const at = { x: xo + s * imgBytes, dst: c, nb: e - s, ...geo };
    const patches = aligned ? kernelCall('im2colT', { ...at, panelBytes: kn * 16 })
      : kernelCall('im2colS', { ...at, P1: 64, Q1: 16, P2: kn * 16, Q2: 4, back: 0 });
    return [patches, kernelCall('panel8', { src: dyo + s * oh * ow * co * 4, dst: bp, kn, panels: co / NR, srcRow: co * 4 }),
      ...product(taps, c, part ? po : oo, co * 4, { b: bp, n: co, kn, bRow: NR * 4, bPanel: kn * NR * 4, mode: i ? 1 : 0 })];
  })), nb * oh * ow * taps * co >= SHARE_MIN_CONV_MACS);
  if (plan.length > 1) kit.run([[kernelCall('add_vv', { a: oo, b: po, out: oo, rows: 1, rowBytes: taps * co * 4, bRow: 0 })]]);
  free(backend, partial, cols);
  if (xp !== x) free(backend, xp);
  return out;
}

/** dx = col2im(dy W^T): each pixel's row of tap gradients added back where im2col read it. */
export function convInputGrad(backend: BackendWasm, kit: Pool, dy: TensorInfo, filter: TensorInfo, info: Info): TensorInfo {
  const { batchSize: nb, outChannels: co, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w, inChannels: ci, padInfo: p } = info;
  const taps = info.filterHeight * info.filterWidth * ci;
  // Rows of tap gradients are padded to whole 8-column panels; odd ones go back one float at a time.
  const n = Math.ceil(taps / NR) * NR, aligned = n === taps && (info.filterWidth * ci) % 4 === 0;
  const { hp, wp, geo, imgBytes } = geometry(info);
  const full = backend.makeOutput([nb, hp, wp, ci], 'float32');
  const wt = panels(backend, co, n, filter, (k, j) => j * co + k, taps);
  const plan = chunks(nb, oh * ow * n * 4);
  const images = Math.max(...plan.map((c) => c[0][1] - c[0][0]));
  const perPart = (images * oh * ow * n + roundUp(images * oh * ow) * co) * 4;
  const cols = backend.makeOutput([plan.length * perPart / 4], 'float32');
  backend.typedArrayFromHeap(full).fill(0);
  const [dyo, wo, dxo, colo] = [dy, wt, full, cols].map((t) => offset(backend, t));
  const g = { b: wo, n, kn: co, bRow: NR * 4, bPanel: co * NR * 4 };
  // dy rows are packed into A panels by im2col4 over a 1 x rows "image" with 1x1 "patches".
  kit.run(plan.map((list, part) => list.flatMap(([s, e]): Call[] => {
    const c = colo + part * perPart, packed = c + images * oh * ow * n * 4, m = (e - s) * oh * ow;
    const at = { x: dxo + s * imgBytes, dst: c, nb: e - s, ...geo };
    const back = aligned ? kernelCall('col2im', { ...at, unused: 0 })
      : kernelCall('im2colS', { ...at, P1: 16 * n, Q1: 4 * n, P2: 16, Q2: 4, back: 1 });
    return [kernelCall('im2col4', { x: dyo + s * oh * ow * co * 4, dst: packed, ...matrixAsImage(m, co * 4), count: m }),
      ...product(m, packed, c, n * 4, g), back];
  })), nb * oh * ow * taps * co >= SHARE_MIN_CONV_MACS);
  free(backend, wt, cols);
  if (hp === h && wp === w) return full;
  const out = run(backend, 'Slice', { x: full }, { begin: [0, p.top, p.left, 0], size: [nb, h, w, ci] });
  free(backend, full);
  return out;
}
