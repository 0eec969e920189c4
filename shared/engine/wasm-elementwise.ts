/**
 * Add, Sub, Multiply, RealDiv, Relu, Step, Square and Sqrt on float32 through the SIMD lanes of
 * shared/engine/kernels/lanes.wat, split over the pool's two threads; shapes they do not cover (other broadcasts, odd
 * lengths, small tensors, other dtypes) go to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { callStock } from './wasm-conv.js';
import { kernelCall, offset, poolFor, SHARE_MIN_FLOATS, twoParts, type Call } from './wasm-pool.js';
import type { BinaryOp, UnaryOp } from './wasm-modules.js';

type TensorInfo = tf.TensorInfo;
type Args = { inputs: Record<string, TensorInfo>; backend: BackendWasm; attrs?: Record<string, unknown> };

/** Below this many floats the stock kernel's lower call overhead wins. */
const MIN_SIZE = 4096;
const size = (t: TensorInfo): number => tf.util.sizeFromShape(t.shape);


export const BINARY_KERNELS: Record<string, BinaryOp> = { Add: 'add', Sub: 'sub', Multiply: 'mul', RealDiv: 'div' };
const COMMUTATIVE = new Set<BinaryOp>(['add', 'mul']);

export function makeBinary(op: BinaryOp, stock: tf.KernelFunc) {
  return (args: Args): TensorInfo => {
    const { inputs: { a, b }, backend } = args;
    const kit = a.dtype === 'float32' && b.dtype === 'float32' && Math.max(size(a), size(b)) >= MIN_SIZE ? poolFor(backend) : null;
    if (!kit) return callStock(stock, args);
    const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    // A 1-D operand as long as the other's last axis: a bias (Add in every dense and conv layer).
    const bias = (v: TensorInfo, w: TensorInfo): boolean => w.shape.length === 1 && v.shape.length > 1 && w.shape[0] === v.shape.at(-1);
    let plan: { kind: 'vv' | 'vs' | 'sv'; x: TensorInfo; y: TensorInfo; out: TensorInfo; row: number } | null = null;
    if (same) plan = { kind: 'vv', x: a, y: b, out: a, row: 4 };
    else if (size(b) === 1) plan = { kind: 'vs', x: a, y: b, out: a, row: 4 };
    else if (size(a) === 1) plan = COMMUTATIVE.has(op) ? { kind: 'vs', x: b, y: a, out: b, row: 4 } : { kind: 'sv', x: a, y: b, out: b, row: 4 };
    else if (bias(a, b)) plan = { kind: 'vv', x: a, y: b, out: a, row: a.shape.at(-1) as number };
    else if (bias(b, a) && COMMUTATIVE.has(op)) plan = { kind: 'vv', x: b, y: a, out: b, row: b.shape.at(-1) as number };
    if (!plan || size(plan.out) % 4 !== 0 || plan.row % 4 !== 0) return callStock(stock, args);
    const out = backend.makeOutput(tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape), 'float32');
    const [xo, yo, oo] = [plan.x, plan.y, out].map((t) => offset(backend, t));
    const f = `${op}_${plan.kind}` as const;
    const { kind, row } = plan;
    const isBias = kind === 'vv' && !same;
    // Rows of `row` floats (a bias is re-read from its start on every row); else groups of 4 floats.
    kit.run(twoParts(size(out) / row).map(([s, e]): Call[] => {
      const at = s * row * 4;
      const flat = { rows: 1, rowBytes: (e - s) * row * 4, bRow: 0 };
      if (kind === 'vs') return [kernelCall(f, { a: xo + at, b: yo, out: oo + at, ...flat })];
      if (kind === 'sv') return [kernelCall(f, { a: xo, b: yo + at, out: oo + at, ...flat })];
      return isBias ? [kernelCall(f, { a: xo + at, b: yo, out: oo + at, rows: e - s, rowBytes: row * 4, bRow: 0 })]
        : [kernelCall(f, { a: xo + at, b: yo + at, out: oo + at, ...flat })];
    }), size(out) >= SHARE_MIN_FLOATS);
    return out;
  };
}

export const UNARY_KERNELS: Record<string, UnaryOp> = { Relu: 'relu', Step: 'step', Square: 'square', Sqrt: 'sqrt' };

export function makeUnary(op: UnaryOp, stock: tf.KernelFunc) {
  return (args: Args): TensorInfo => {
    const { inputs: { x }, backend, attrs } = args;
    const n = size(x);
    const plain = op !== 'step' || ((attrs?.alpha as number | undefined) ?? 0) === 0;
    const kit = plain && x.dtype === 'float32' && n >= MIN_SIZE && n % 4 === 0 ? poolFor(backend) : null;
    if (!kit) return callStock(stock, args);
    const out = backend.makeOutput(x.shape, 'float32');
    const [xo, oo] = [x, out].map((t) => offset(backend, t));
    kit.run(twoParts(n / 4).map(([s, e]): Call[] => [kernelCall(op, { x: xo + s * 16, out: oo + s * 16, bytes: (e - s) * 16 })]), n >= SHARE_MIN_FLOATS);
    return out;
  };
}
