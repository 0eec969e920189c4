/**
 * Elementwise loops over float32 lanes for the wasm backend (run by wasm-pool.ts on two threads).
 * The stock kernels are scalar and single-threaded; a training step spends ~15 ms of ~80 in them on a
 * first conv layer's activations (128 x 26 x 26 x 32 floats, 11 MB each), memory-bound.
 * Each keeps the cpu kernel's semantics lane by lane (IEEE ops; Relu and Step keep NaN).
 */
import { ADD, I32, MUL, V128, ZERO, get, i32, load, loop, set, simd, store, when, type Func } from './wasm-asm.js';

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

const NEG_INF = [...simd(0x0c), ...Array(4).fill([0, 0, 0x80, 0xff]).flat()];
// Shared parameters of the window kernels: (x, y, nb, oh, ow, fh, fw, cBytes, rowBytes, imgBytes, ...):
// non-overlapping fh x fw windows of NHWC images (rows rowBytes apart), c a multiple of 4.
const [PX, PY, NB, OH, OW, FH, FW, C_BYTES, ROW_BYTES, IMG_BYTES] = Array.from({ length: 10 }, (_, i) => i);
/** Loops over windows and 4-channel groups; `at(i, j)` is code for the address of tap (i, j). */
function windows(first: number, body: (at: (i: number, j: number) => number[], ch: number) => number[]): number[] {
  const [b, r, q, ch, px, po] = Array.from({ length: 6 }, (_, i) => first + i);
  const at = (i: number, j: number): number[] => [...get(px), ...get(i), ...get(ROW_BYTES), MUL, ADD, ...get(j), ...get(C_BYTES), MUL, ADD, ...get(ch), ADD];
  return [...get(PY), ...set(po), ...loop(b, NB, 1, loop(r, OH, 1, loop(q, OW, 1, [
    ...get(PX), ...get(b), ...get(IMG_BYTES), MUL, ADD, ...get(r), ...get(FH), MUL, ...get(ROW_BYTES), MUL, ADD,
    ...get(q), ...get(FW), MUL, ...get(C_BYTES), MUL, ADD, ...set(px),
    ...loop(ch, C_BYTES, 16, body(at, po)),
    ...get(po), ...get(C_BYTES), ADD, ...set(po)]))),
  ];
}

/**
 * maxPool(x, y, ...): the cpu kernel's rule per lane, a pixel replaces the running max only if greater
 * (f32x4.pmax; NaN never wins, -Infinity to start). Its output rows are y's, ow*cBytes apart.
 */
const MAX_POOL: Func = {
  name: 'maxPool', params: 10, locals: [[8, I32], [1, V128]],
  code: (() => {
    const [i, j, ch, cur] = [16, 17, 13, 18];
    return windows(10, (at, po) => [...NEG_INF, ...set(cur),
      ...loop(i, FH, 1, loop(j, FW, 1, [...get(cur), ...at(i, j), ...load(0), ...simd(0xeb), ...set(cur)])),
      ...get(po), ...get(ch), ADD, ...get(cur), ...store(0)]);
  })(),
};

/**
 * maxPoolGrad(x, y, ..., dy, dx): dy of each window to the first position equal to its max (cpu
 * semantics), 0 elsewhere; every covered position of dx is written.
 */
const MAX_POOL_GRAD: Func = {
  name: 'maxPoolGrad', params: 12, locals: [[8, I32], [3, V128]],
  code: (() => {
    const [DY, DX] = [10, 11];
    const [ch, i, j] = [15, 18, 19];
    const [yv, rem, hit] = [20, 21, 22];
    return windows(12, (at, pOut) => [
      ...get(pOut), ...get(ch), ADD, ...load(0), ...set(yv),
      ...get(pOut), ...get(ch), ADD, ...get(PY), 0x6b, ...get(DY), ADD, ...load(0), ...set(rem),
      ...loop(i, FH, 1, loop(j, FW, 1, [
        ...at(i, j), ...load(0), ...get(yv), ...simd(0x41), ...set(hit),
        ...at(i, j), ...get(PX), 0x6b, ...get(DX), ADD, ...get(rem), ...get(hit), ...simd(0x4e), ...store(0),
        ...get(rem), ...get(hit), ...simd(0x4f), ...set(rem)]))]);
  })(),
};

/** sumBlocks(src, rows, rowBytes, block, dst): float32 sums of each block of rows, one row of dst each. */
const SUM_BLOCKS: Func = {
  name: 'sumBlocks', params: 5, locals: [[4, I32]],
  code: (() => {
    const [src, rows, rowBytes, block, dst] = [0, 1, 2, 3, 4];
    const [r, j, p, out] = [5, 6, 7, 8];
    return [...get(src), ...set(p), ...get(dst), ...set(out), ...loop(r, rows, 1, [
      ...get(r), ...get(block), 0x70, 0x45, ...when(loop(j, rowBytes, 16, [...get(out), ...get(j), ADD, ...ZERO, ...store(0)])),
      ...loop(j, rowBytes, 16, [...get(out), ...get(j), ADD, ...get(out), ...get(j), ADD, ...load(0),
        ...get(p), ...get(j), ADD, ...load(0), ...simd(0xe4), ...store(0)]),
      ...get(p), ...get(rowBytes), ADD, ...set(p),
      ...get(r), ...i32(1), ADD, ...get(block), 0x70, 0x45, ...when([...get(out), ...get(rowBytes), ADD, ...set(out)]),
    ])];
  })(),
};

export const laneFuncs = (): Func[] => [MAX_POOL, MAX_POOL_GRAD, SUM_BLOCKS,
  ...(Object.keys(BINARY_OPS) as BinaryOp[]).flatMap((op) => (['vv', 'vs', 'sv'] as const).map((k) => binary(op, k))),
  ...UNARY_OPS.map(unary),
];
