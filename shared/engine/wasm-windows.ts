/**
 * Max pooling, its gradient and sums over leading axes (bias gradients) on the wasm backend, through
 * shared/engine/kernels/windows.wat on the pool's two threads. The cpu kernel's semantics, in a fixed order of operations.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { callStock } from './wasm-conv.js';
import { kernelCall, offset, poolFor, SHARE_MIN_FLOATS, twoParts, type Call } from './wasm-pool.js';
import type { KernelArgs } from './wasm-modules.js';

type TensorInfo = tf.TensorInfo;
type Args = { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs: Record<string, unknown> };
type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;


/** Windows that tile the image without padding or overlap (every CNN here), c a multiple of 4; else null. */
function tiling(x: TensorInfo, attrs: Args['attrs']): tf.backend_util.Conv2DInfo | null {
  const info = tf.backend_util.computePool2DInfo(x.shape as Shape4, attrs.filterSize as [number, number],
    attrs.strides as [number, number], 1, attrs.pad as Pad, attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined);
  const { inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw, padInfo: p } = info;
  const ok = x.dtype === 'float32' && info.strideHeight === fh && info.strideWidth === fw && p.top === 0 && p.left === 0
    && oh * fh <= h && ow * fw <= w && c % 4 === 0 && info.dataFormat === 'channelsLast';
  return ok ? info : null;
}
/** The window kernels' geometry (windows.wat) for images s..e of the batch. */
const windowArgs = (info: tf.backend_util.Conv2DInfo, s: number, e: number): Omit<KernelArgs<'maxPool'>, 'x' | 'y'> => {
  const { inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  return { nb: e - s, oh, ow, fh, fw, cBytes: c * 4, rowBytes: w * c * 4, imgBytes: h * w * c * 4 };
};

export function makeMaxPool(stock: tf.KernelFunc) {
  return (args: Args): TensorInfo => {
    const { inputs: { x }, backend } = args;
    const info = tiling(x, args.attrs);
    const kit = info ? poolFor(backend) : null;
    if (!kit || !info) return callStock(stock, args);
    const out = backend.makeOutput(info.outShape, 'float32');
    const [xo, yo] = [x, out].map((t) => offset(backend, t));
    const inImg = info.inHeight * info.inWidth * info.inChannels * 4, outImg = info.outHeight * info.outWidth * info.outChannels * 4;
    kit.run(twoParts(info.batchSize).map(([s, e]): Call[] =>
      [kernelCall('maxPool', { x: xo + s * inImg, y: yo + s * outImg, ...windowArgs(info, s, e) })]), tf.util.sizeFromShape(x.shape) >= SHARE_MIN_FLOATS);
    return out;
  };
}

/**
 * Max-pool gradient routed to the first maximum of each window, like the cpu kernel. The stock wasm
 * kernel starts its running max at FLT_MIN (all-negative windows pick position 0), takes the last of
 * tied maxima, and is slow. Other window shapes go to the given fallback.
 */
export function makeMaxPoolGrad(fallback: (args: Args) => TensorInfo) {
  return (args: Args): TensorInfo => {
    const { inputs: { dy, input, output }, backend } = args;
    const info = output ? tiling(input, args.attrs) : null;
    const kit = info ? poolFor(backend) : null;
    if (!kit || !info) return fallback(args);
    const out = backend.makeOutput(input.shape, 'float32');
    const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
    if (oh * fh !== h || ow * fw !== w) backend.typedArrayFromHeap(out).fill(0); // rows/cols no window covers
    const [xo, yo, go, dxo] = [input, output, dy, out].map((t) => offset(backend, t));
    const inImg = h * w * info.inChannels * 4, outImg = oh * ow * info.outChannels * 4;
    kit.run(twoParts(info.batchSize).map(([s, e]): Call[] =>
      [kernelCall('maxPoolGrad', { x: xo + s * inImg, y: yo + s * outImg, ...windowArgs(info, s, e), dy: go + s * outImg, dx: dxo + s * inImg })]), tf.util.sizeFromShape(input.shape) >= SHARE_MIN_FLOATS);
    return out;
  };
}

/**
 * Sum over leading axes (bias gradients: dy summed over batch, rows, cols). The stock kernel first
 * transposes the reduced axes innermost, which costs ~10x the sum itself; other cases go to it.
 * Float32 sums of fixed blocks of rows (both threads), totalled in float64 in block order (cpu sums
 * in float64), so the result does not depend on the threads.
 */
export function makeSum(stock: tf.KernelFunc) {
  return (args: Args): TensorInfo => {
    const { inputs: { x }, backend, attrs } = args;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((a, b) => a - b);
    const k = axes.length;
    const inner = tf.util.sizeFromShape(x.shape.slice(k));
    const kit = x.dtype === 'float32' && k > 0 && k < x.shape.length && axes[k - 1] === k - 1 && inner % 4 === 0 ? poolFor(backend) : null;
    if (!kit) return callStock(stock, args);
    const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
    const block = Math.max(1, Math.floor(16384 / inner)), blocks = Math.ceil(rows / block);
    const partial = backend.makeOutput([blocks * inner], 'float32');
    const [src, po] = [x, partial].map((t) => offset(backend, t));
    kit.run(twoParts(blocks).map(([s, e]): Call[] => [kernelCall('sumBlocks', {
      src: src + s * block * inner * 4, rows: Math.min(rows, e * block) - s * block, rowBytes: inner * 4, block, dst: po + s * inner * 4,
    })]), rows * inner >= SHARE_MIN_FLOATS);
    const parts = backend.typedArrayFromHeap(partial);
    const acc = new Float64Array(inner);
    for (let b = 0; b < blocks; b++) for (let i = 0; i < inner; i++) acc[i] += parts[b * inner + i];
    const out = backend.makeOutput(attrs.keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k), 'float32');
    backend.typedArrayFromHeap(out).set(acc);
    backend.disposeData(partial.dataId);
    return out;
  };
}
