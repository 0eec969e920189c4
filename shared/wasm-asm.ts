/**
 * A few bytes of WebAssembly assembler: enough to emit the project's SIMD loops (wasm-lanes.ts,
 * wasm-gemm.ts) as modules that import the backend's memory. The project has no wasm toolchain,
 * and these loops are small enough to write as opcodes.
 */
export const leb = (n: number): number[] => {
  const out: number[] = [];
  do { out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>>= 7; } while (n);
  return out;
};
const sleb = (v: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};
export const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
export const bytes = (t: string): number[] => vec([...t].map((ch) => [ch.charCodeAt(0)]));
export const get = (i: number): number[] => [0x20, ...leb(i)];
export const set = (i: number): number[] => [0x21, ...leb(i)];
export const i32 = (v: number): number[] => [0x41, ...sleb(v)];
export const [ADD, MUL] = [0x6a, 0x6c];
export const simd = (op: number, mem = false, offset = 0): number[] => [0xfd, ...leb(op), ...(mem ? [2, ...leb(offset)] : [])];
export const V128 = 0x7b, I32 = 0x7f;
export const load = (offset = 0): number[] => simd(0x00, true, offset);
export const store = (offset = 0): number[] => simd(0x0b, true, offset);
export const ZERO = simd(0x0c).concat(Array(16).fill(0));
export const [FADD, FMUL, FMAX] = [simd(0xe4), simd(0xe6), simd(0xe9)];
/** f32.load / f32.store of one float (align 4, offset 0). */
export const [F32_LOAD, F32_STORE] = [[0x2a, 2, 0], [0x38, 2, 0]];
/** if (cond on stack) { body } */
export const when = (body: number[]): number[] => [0x04, 0x40, ...body, 0x0b];

/** for (i = 0; i < n; i += step) body — `n` a local (or code), `step` a constant (or code). */
export const loop = (i: number, n: number | number[], step: number | number[], body: number[]): number[] => [
  ...i32(0), ...set(i), 0x02, 0x40, 0x03, 0x40, ...get(i), ...(typeof n === 'number' ? get(n) : n), 0x4f, 0x0d, 1,
  ...body, ...get(i), ...(typeof step === 'number' ? i32(step) : step), ADD, ...set(i), 0x0c, 0, 0x0b, 0x0b];

export interface Func { name: string; params: number; locals: Array<[count: number, type: number]>; code: number[] }

/** A module importing `env.mem` (shared when the backend's memory is) and exporting `funcs`. */
export function assemble(funcs: Func[], shared: boolean): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
  const arities = [...new Set(funcs.map((f) => f.params))];
  const body = (f: Func): number[] => {
    const code = [...vec(f.locals.map(([n, t]) => [...leb(n), t])), ...f.code, 0x0b];
    return [...leb(code.length), ...code];
  };
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vec(arities.map((n) => [0x60, ...vec(Array(n).fill([I32])), 0]))),
    ...section(2, vec([[...bytes('env'), ...bytes('mem'), 2, ...(shared ? [3, 1, ...leb(65536)] : [0, 1])]])),
    ...section(3, vec(funcs.map((f) => leb(arities.indexOf(f.params))))),
    ...section(7, vec(funcs.map((f, i) => [...bytes(f.name), 0, ...leb(i)]))),
    ...section(10, vec(funcs.map(body)))]);
}
