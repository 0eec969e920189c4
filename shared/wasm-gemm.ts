/**
 * Matrix products for convolutions and dense layers on the wasm backend (run by wasm-pool.ts), and the
 * im2col packing that feeds them. XNNPACK's wasm convolutions reach ~13 GFLOP/s per thread here and its
 * filter gradient (a convolution with an 11x11 "kernel") far less. These 4x8 register tiles use
 * relaxed-SIMD fused multiply-add where V8 offers it, ~36 GFLOP/s per thread measured in isolation;
 * larger tiles spill V8's registers (6x8 measured ~16).
 */
import {
  ADD, F32_LOAD, F32_STORE, FADD, FMAX, FMUL, I32, MUL, V128, ZERO, get, i32, load, loop, set, simd, store, when, type Func,
} from './wasm-asm.js';

export const MR = 4, NR = 8;
const MADD = simd(0x105); // f32x4.relaxed_madd: a * b + c, fused where the CPU can

/**
 * gemmR(a, b, c, m, n, kn, aRow, aK, bRow, bPanel, cRow, mode, bias, relu), m a multiple of R, n of 8:
 * C[i][j] = init + sum_k A(i,k) B(k,j) for rows i = i0 + r of each R-row tile, with A(i,k) at
 * a + i0*aRow + k*aK + r*4 (a tile's R values of one k side by side: A transposed as it is, or packed
 * by im2col4 / im2colT / im2colS), B(k,j) at b + (j/8)*bPanel + k*bRow + (j%8)*4, C(i,j) at c + i*cRow + j*4; init 0
 * (mode 0), C (1) or bias[j] (2); relu != 0 clamps at 0. One A pointer keeps the k loop in registers.
 */
function gemm(R: number, fma: boolean): Func {
  const [a, b, c, m, n, kn, aRow, aK, bRow, bPanel, cRow, mode, bias, relu] = Array.from({ length: 14 }, (_, i) => i);
  const [i0, j0, k, pb, pbBase, pc, pa] = [14, 15, 16, 17, 18, 19, 20];
  const acc = (i: number, v: number): number => 21 + 2 * i + v;
  const bv = (v: number): number => 21 + 2 * R + v, s = 23 + 2 * R;
  const tile = (f: (i: number, v: number) => number[]): number[] =>
    Array.from({ length: R }, (_, i) => [0, 1].flatMap((v) => f(i, v))).flat();
  const step: number[] = [...get(pb), ...load(0), ...set(bv(0)), ...get(pb), ...load(16), ...set(bv(1))];
  for (let i = 0; i < R; i++) {
    step.push(...get(pa), ...simd(0x09, true, 4 * i), ...set(s)); // v128.load32_splat
    for (const v of [0, 1]) {
      step.push(...get(s), ...get(bv(v)), ...(fma ? [...get(acc(i, v)), ...MADD] : [...FMUL, ...get(acc(i, v)), ...FADD]), ...set(acc(i, v)));
    }
  }
  step.push(...get(pa), ...get(aK), ADD, ...set(pa), ...get(pb), ...get(bRow), ADD, ...set(pb));
  const code = loop(i0, m, R, [
    ...get(b), ...set(pbBase),
    ...loop(j0, n, NR, [
      ...get(c), ...get(i0), ...get(cRow), MUL, ADD, ...get(j0), ...i32(4), MUL, ADD, ...set(pc),
      ...get(a), ...get(i0), ...get(aRow), MUL, ADD, ...set(pa), ...get(pbBase), ...set(pb),
      ...tile((i, v) => [...ZERO, ...set(acc(i, v))]),
      ...get(mode), ...i32(1), 0x46, ...when(tile((i, v) => [...get(pc), ...i32(i), ...get(cRow), MUL, ADD, ...load(16 * v), ...set(acc(i, v))])),
      ...get(mode), ...i32(2), 0x46, ...when(tile((i, v) => [...get(bias), ...get(j0), ...i32(4), MUL, ADD, ...load(16 * v), ...set(acc(i, v))])),
      ...loop(k, kn, 1, step),
      ...get(relu), ...when(tile((i, v) => [...get(acc(i, v)), ...ZERO, ...FMAX, ...set(acc(i, v))])),
      ...tile((i, v) => [...get(pc), ...i32(i), ...get(cRow), MUL, ADD, ...get(acc(i, v)), ...store(16 * v)]),
      ...get(pbBase), ...get(bPanel), ADD, ...set(pbBase),
    ]),
  ]);
  return { name: `gemm${R}`, params: 14, locals: [[7, I32], [2 * R + 3, V128]], code };
}

// Shared parameters of the patch kernels: (x, dst, nb, oh, ow, kh, rowBytes, segBytes, colStep, rowStep,
// imgBytes, extra): nb images of the (already padded) NHWC input, imgBytes apart; output pixel (r, q) of
// an image reads kh segments of kw*ci floats (segBytes), rowBytes apart, from x + r*rowStep + q*colStep.
const [X, DST, NB, OH, OW, KH, ROW_BYTES, SEG_BYTES, COL_STEP, ROW_STEP, IMG_BYTES, EXTRA] = Array.from({ length: 12 }, (_, i) => i);
const pixel = (bi: number, r: number, q: number): number[] => [...get(X), ...get(bi), ...get(IMG_BYTES), MUL, ADD,
  ...get(r), ...get(ROW_STEP), MUL, ADD, ...get(q), ...get(COL_STEP), MUL, ADD];
/** q++, carrying into r and the image index. */
const advance = (bi: number, r: number, q: number): number[] => [
  ...get(q), ...i32(1), ADD, ...set(q), ...get(q), ...get(OW), 0x46,
  ...when([...i32(0), ...set(q), ...get(r), ...i32(1), ADD, ...set(r), ...get(r), ...get(OH), 0x46,
    ...when([...i32(0), ...set(r), ...get(bi), ...i32(1), ADD, ...set(bi)])])];
const shuffle = (lanes: number[]): number[] => [...simd(0x0d), ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])];

/**
 * im2col4(..., count): im2col of `count` pixels written as A panels for gemm: per 4 pixels, per tap, the
 * 4 pixels' values side by side (4x4 transposes). A last partial panel repeats the last pixel.
 */
const IM2COL4: Func = {
  name: 'im2col4', params: 12, locals: [[12, I32], [8, V128]],
  code: (() => {
    const [bi, r, q, p, t, e, out, base] = [12, 13, 14, 15, 16, 17, 18, 19];
    const src = (i: number): number => 20 + i, v = (i: number): number => 24 + i, w = (i: number): number => 28 + i;
    const code: number[] = [...get(DST), ...set(out)];
    const gather: number[] = [];
    for (let i = 0; i < 4; i++) {
      gather.push(...pixel(bi, r, q), ...set(src(i)), ...get(p), ...i32(i + 1), ADD, ...get(EXTRA), 0x48, ...when(advance(bi, r, q)));
    }
    const body: number[] = [];
    for (let i = 0; i < 4; i++) body.push(...get(src(i)), ...get(base), ADD, ...get(e), ADD, ...load(0), ...set(v(i)));
    const pair = [[0, 1, 0, 4, 1, 5], [0, 1, 2, 6, 3, 7], [2, 3, 0, 4, 1, 5], [2, 3, 2, 6, 3, 7]];
    for (const [k, [a, b, ...l]] of pair.entries()) body.push(...get(v(a)), ...get(v(b)), ...shuffle(l), ...set(w(k)));
    const outs = [[0, 2, 0, 1, 4, 5], [0, 2, 2, 3, 6, 7], [1, 3, 0, 1, 4, 5], [1, 3, 2, 3, 6, 7]];
    for (const [k, [a, b, ...l]] of outs.entries()) body.push(...get(out), ...get(w(a)), ...get(w(b)), ...shuffle(l), ...store(16 * k));
    body.push(...get(out), ...i32(64), ADD, ...set(out));
    code.push(...loop(p, EXTRA, 4, [...gather,
      ...loop(t, KH, 1, [...get(t), ...get(ROW_BYTES), MUL, ...set(base), ...loop(e, SEG_BYTES, 16, body)])]));
    return code;
  })(),
};

/**
 * im2col1(..., count): im2col4 for one input channel at stride 1 (a first layer): 4 pixels side by
 * side in one output row read each tap as 4 neighbouring input floats, one v128 load; a panel that
 * wraps to the next row is gathered one float at a time.
 */
const IM2COL_1: Func = {
  name: 'im2col1', params: 12, locals: [[10, I32]],
  code: (() => {
    const [bi, r, q, p, t, j, out, src, i, s1] = [12, 13, 14, 15, 16, 17, 18, 19, 20, 21];
    const taps = (body: number[]): number[] => loop(t, KH, 1, loop(j, SEG_BYTES, 4, body));
    const dst = [...get(out), ...get(t), ...get(SEG_BYTES), MUL, ...get(j), ADD, ...i32(4), MUL, ADD];
    const from = (base: number): number[] => [...get(base), ...get(t), ...get(ROW_BYTES), MUL, ADD, ...get(j), ADD];
    const row = [...pixel(bi, r, q), ...set(src), ...taps([...dst, ...from(src), ...load(0), ...store(0)]),
      ...Array(4).fill(0).flatMap(() => advance(bi, r, q))];
    const wrap = loop(i, i32(4), 1, [...pixel(bi, r, q), ...set(s1),
      ...taps([...dst, ...get(i), ...i32(4), MUL, ADD, ...from(s1), ...F32_LOAD, ...F32_STORE]),
      ...get(p), ...get(i), ADD, ...i32(1), ADD, ...get(EXTRA), 0x48, ...when(advance(bi, r, q))]);
    return [...get(DST), ...set(out), ...loop(p, EXTRA, 4, [
      ...get(q), ...i32(4), ADD, ...get(OW), 0x4c, ...get(p), ...i32(4), ADD, ...get(EXTRA), 0x4c, 0x71,
      0x04, 0x40, ...row, 0x05, ...wrap, 0x0b,
      ...get(out), ...get(KH), ...get(SEG_BYTES), MUL, ...i32(4), MUL, ADD, ...set(out)])];
  })(),
};

/**
 * im2colT(..., panelBytes): im2col transposed into A panels of 4 taps: tap group g of pixel k (counted
 * from 0 over the nb images) at dst + g*panelBytes + k*16.
 * col2im(...): adds row k of dst (kh segments) back where im2col read it, into a zeroed padded dx.
 */
function patches(name: 'im2colT' | 'col2im'): Func {
  const [bi, r, q, t, j, src, row, pp] = [12, 13, 14, 15, 16, 17, 18, 19];
  const here = [...get(src), ...get(t), ...get(ROW_BYTES), MUL, ADD, ...get(j), ADD];
  const segment = name === 'im2colT'
    ? loop(j, SEG_BYTES, 16, [...get(pp), ...here, ...load(0), ...store(0), ...get(pp), ...get(EXTRA), ADD, ...set(pp)])
    : loop(j, SEG_BYTES, 16, [...here, ...here, ...load(0), ...get(row), ...get(j), ADD, ...load(0), ...FADD, ...store(0)]);
  const step = name === 'im2colT' ? [] : [...get(row), ...get(SEG_BYTES), ADD, ...set(row)];
  const code = [...get(DST), ...set(row), ...loop(bi, NB, 1, loop(r, OH, 1, loop(q, OW, 1, [
    ...pixel(bi, r, q), ...set(src), ...get(row), ...set(pp),
    ...loop(t, KH, 1, [...segment, ...step]),
    ...(name === 'im2colT' ? [...get(row), ...i32(16), ADD, ...set(row)] : []),
  ])))];
  return { name, params: 12, locals: [[8, I32]], code };
}

/**
 * im2colS(..., P1, Q1, P2, Q2, back): im2col for any segment length, one float at a time: pixel k's tap u
 * at dst + (k>>2)*P1 + (k&3)*Q1 + (u>>2)*P2 + (u&3)*Q2, which gives either panel layout or plain rows.
 * back != 0 runs it as col2im (adds dst into x). For a first layer's 3-float segments.
 */
const IM2COL_S: Func = {
  name: 'im2colS', params: 16, locals: [[10, I32]],
  code: (() => {
    const [P1, Q1, P2, Q2, BACK] = [11, 12, 13, 14, 15];
    const [bi, r, q, t, j, src, k, u, kk, at] = [16, 17, 18, 19, 20, 21, 22, 23, 24, 25];
    const split = (v: number, p: number, qq: number): number[] =>
      [...get(v), ...i32(2), 0x76, ...get(p), MUL, ...get(v), ...i32(3), 0x71, ...get(qq), MUL, ADD];
    return [...i32(0), ...set(k), ...loop(bi, NB, 1, loop(r, OH, 1, loop(q, OW, 1, [
      ...pixel(bi, r, q), ...set(src), ...get(DST), ...split(k, P1, Q1), ADD, ...set(kk), ...i32(0), ...set(u),
      ...loop(t, KH, 1, loop(j, SEG_BYTES, 4, [
        ...get(src), ...get(t), ...get(ROW_BYTES), MUL, ADD, ...get(j), ADD, ...set(at),
        ...get(BACK), 0x04, 0x40,
        ...get(at), ...get(at), ...F32_LOAD, ...get(kk), ...split(u, P2, Q2), ADD, ...F32_LOAD, 0x92, ...F32_STORE,
        0x05, ...get(kk), ...split(u, P2, Q2), ADD, ...get(at), ...F32_LOAD, ...F32_STORE, 0x0b,
        ...get(u), ...i32(1), ADD, ...set(u)])),
      ...get(k), ...i32(1), ADD, ...set(k),
    ])))];
  })(),
};

/** panel8(src, dst, kn, panels, srcRow): B (kn rows, srcRow bytes apart) into gemm's 8-column panels. */
const PANEL8: Func = {
  name: 'panel8', params: 5, locals: [[3, I32]],
  code: (() => {
    const [src, dst, kn, panels, srcRow] = [0, 1, 2, 3, 4];
    const [p, k, from] = [5, 6, 7];
    return loop(p, panels, 1, [...get(src), ...get(p), ...i32(32), MUL, ADD, ...set(from), ...loop(k, kn, 1, [
      ...get(dst), ...get(from), ...load(0), ...store(0), ...get(dst), ...get(from), ...load(16), ...store(16),
      ...get(dst), ...i32(32), ADD, ...set(dst), ...get(from), ...get(srcRow), ADD, ...set(from)])]);
  })(),
};

// filterGradImage(x, dy, out, oh, ow, kh, kw, ci, rowBytes, colStep, rowStep, coBytes): for one image,
// out[kh][kw][ci][:] += sum_{r,q} x[r*s+kh][q*s+kw][ci] * dy[r][q][:] (x already padded). For layers with
// few taps whose output channels are a multiple of 4 but not of 8, which the 8-column tiles do not cover.
// locals: 12 r, 13 q, 14 a, 15 bb, 16 c, 17 j, 18 dyRow, 19 xPix, 20 outRow | v128: 21 s
const FILTER_GRAD_IMAGE: Func = {
  name: 'filterGradImage', params: 12, locals: [[9, I32], [1, V128]],
  code: loop(12, 3, 1, loop(13, 4, 1, [
    ...get(1), ...get(12), ...get(4), MUL, ...get(13), ADD, ...get(11), MUL, ADD, ...set(18),
    ...get(0), ...get(12), ...get(10), MUL, ADD, ...get(13), ...get(9), MUL, ADD, ...set(19),
    ...get(2), ...set(20),
    ...loop(14, 5, 1, loop(15, 6, 1, loop(16, 7, 1, [
      ...get(19), ...get(14), ...get(8), MUL, ADD, ...get(15), ...get(7), MUL, ...get(16), ADD, ...i32(4), MUL, ADD,
      ...F32_LOAD, ...simd(0x13), ...set(21),
      ...loop(17, 11, 16, [...get(20), ...get(17), ADD, ...get(20), ...get(17), ADD, ...load(0),
        ...get(21), ...get(18), ...get(17), ADD, ...load(0), ...FMUL, ...FADD, ...store(0)]),
      ...get(20), ...get(11), ADD, ...set(20)]))),
  ])),
};

/** The module's GEMM and patch functions (fma: use relaxed madd). */
export const gemmFuncs = (fma: boolean): Func[] =>
  [...Array.from({ length: MR }, (_, r) => gemm(r + 1, fma)), IM2COL4, IM2COL_1, patches('im2colT'), IM2COL_S, patches('col2im'), PANEL8, FILTER_GRAD_IMAGE];
