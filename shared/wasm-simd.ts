/**
 * Two per-image convolution-gradient loops for layers with few taps, used where the GEMM path of
 * wasm-conv.ts does not apply (output channels a multiple of 4 but not of 8). Hand-assembled like the
 * pool's kernels into a tiny module on the backend's own memory; single-threaded.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { ADD, MUL, bytes, get, i32, leb, loop, set, simd, vec } from './wasm-asm.js';

const [LOAD, STORE, FADD, FMUL, SPLAT] = [simd(0x00, true), simd(0x0b, true), simd(0xe4), simd(0xe6), simd(0x13)];
const [LOAD_F32, STORE_F32, ADD_F32] = [[0x2a, 2, 0], [0x38, 2, 0], [0x92]];
const lane = (i: number): number[] => [...simd(0x1f), i]; // f32x4.extract_lane
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

export interface Simd {
  inputGradImage(...a: number[]): void;
  filterGradImage(...a: number[]): void;
}
const simdCache = new WeakMap<object, Simd | null>();

/** The helpers bound to this backend's memory, or null if they cannot be built. */
export function simdFor(backend: BackendWasm): Simd | null {
  if (simdCache.has(backend)) return simdCache.get(backend) ?? null;
  const m = backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  const mem = m.wasmMemory ?? m.asm?.memory;
  let kit: Simd | null = null;
  if (mem) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && mem.buffer instanceof SharedArrayBuffer;
    const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
    const body = (code: number[]): number[] => [...leb(code.length), ...code];
    const wasm = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
      ...section(1, vec([[0x60, ...vec(Array(12).fill([0x7f])), 0]])),
      ...section(2, vec([[...bytes('env'), ...bytes('mem'), 2, ...(shared ? [3, 1, ...leb(65536)] : [0, 1])]])),
      ...section(3, vec([[0], [0]])),
      ...section(7, vec(['filterGradImage', 'inputGradImage'].map((name, i) => [...bytes(name), 0, i]))),
      ...section(10, vec([body(FILTER_GRAD), body(INPUT_GRAD)]))]);
    try {
      kit = new WebAssembly.Instance(new WebAssembly.Module(wasm), { env: { mem } }).exports as unknown as Simd;
    } catch (e) {
      console.warn(`wasm: SIMD helpers unavailable (${String(e)}); using slower fallbacks`);
    }
  }
  simdCache.set(backend, kit);
  return kit;
}
