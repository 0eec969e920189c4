/**
 * Elementwise loops over float32 lanes for the wasm backend (run by wasm-pool.ts on two threads).
 * The stock kernels are scalar and single-threaded; a training step spends ~15 ms of ~80 in them on a
 * first conv layer's activations (128 x 26 x 26 x 32 floats, 11 MB each), memory-bound.
 * Each keeps the cpu kernel's semantics lane by lane (IEEE ops; Relu and Step keep NaN).
 */
import { ADD, I32, V128, ZERO, get, load, loop, set, simd, store, type Func } from './wasm-asm.js';

export const BINARY_OPS = { add: 0xe4, sub: 0xe5, mul: 0xe6, div: 0xe7 } as const;
export type BinaryOp = keyof typeof BINARY_OPS;
const SPLAT_F32 = simd(0x09, true); // v128.load32_splat
const BITSELECT = simd(0x52);
const ONE = [...simd(0x0c), ...Array(4).fill([0, 0, 0x80, 0x3f]).flat()];

/**
 * <op>_vv(a, b, out, rows, rowBytes, bRow): out = a op b over rows of rowBytes, b advancing bRow bytes
 * per row (rowBytes: the same shape; 0: a bias repeated on every row).
 * <op>_vs(a, b, out, rows, rowBytes, _): b is one float. <op>_sv(a, b, out, rows, rowBytes, rowBytes): a is.
 */
function binary(op: BinaryOp, kind: 'vv' | 'vs' | 'sv'): Func {
  const [a, b, out, rows, rowBytes, bRow, r, j, pa, pb, po, s] = Array.from({ length: 12 }, (_, i) => i);
  const code = [...get(a), ...set(pa), ...get(b), ...set(pb), ...get(out), ...set(po)];
  if (kind !== 'vv') code.push(...get(kind === 'vs' ? b : a), ...SPLAT_F32, ...set(s));
  const va = kind === 'sv' ? get(s) : [...get(pa), ...get(j), ADD, ...load(0)];
  const vb = kind === 'vs' ? get(s) : [...get(pb), ...get(j), ADD, ...load(0)];
  code.push(...loop(r, rows, 1, [
    ...loop(j, rowBytes, 16, [...get(po), ...get(j), ADD, ...va, ...vb, ...simd(BINARY_OPS[op]), ...store(0)]),
    ...get(pa), ...get(rowBytes), ADD, ...set(pa), ...get(po), ...get(rowBytes), ADD, ...set(po),
    ...get(pb), ...get(bRow), ADD, ...set(pb),
  ]));
  return { name: `${op}_${kind}`, params: 6, locals: [[5, I32], [1, V128]], code };
}

export const UNARY_OPS = ['relu', 'step', 'square', 'sqrt'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** <op>(x, out, bytes): relu max(x, 0); step x>0 ? 1 : 0 (NaN stays NaN); square; sqrt. */
function unary(op: UnaryOp): Func {
  const [x, out, bytes, j, v] = [0, 1, 2, 3, 4];
  const f: Record<UnaryOp, number[]> = {
    relu: [...get(v), ...ZERO, ...simd(0xe9)], // f32x4.max: like the cpu kernel's Math.max(0, x) (+0 for -0, NaN kept)
    step: [...get(v), ...get(v), ...ZERO, ...simd(0x44), ...ONE, ...simd(0x4e), ...get(v), ...get(v), ...simd(0x42), ...BITSELECT],
    square: [...get(v), ...get(v), ...simd(0xe6)],
    sqrt: [...get(v), ...simd(0xe3)],
  };
  const code = loop(j, bytes, 16, [...get(x), ...get(j), ADD, ...load(0), ...set(v), ...get(out), ...get(j), ADD, ...f[op], ...store(0)]);
  return { name: op, params: 3, locals: [[1, I32], [1, V128]], code };
}

export const laneFuncs = (): Func[] => [
  ...(Object.keys(BINARY_OPS) as BinaryOp[]).flatMap((op) => (['vv', 'vs', 'sv'] as const).map((k) => binary(op, k))),
  ...UNARY_OPS.map(unary),
];
