/**
 * The project's wasm kernels as the code calls them: the binaries assembled from shared/engine/kernels/*.wat
 * (scripts/build-kernels.ts), each function's parameters by name, and calls built from named arguments.
 * test/kernel-build.test.ts checks these parameter lists against the .wat files.
 */
import { readFileSync } from 'node:fs';

/** Rows of gemm's register tile (gemm1..gemm4 cover 1..MR rows) and its columns (one 8-float panel). */
export const MR = 4, NR = 8;

const GEMM = ['a', 'b', 'c', 'm', 'n', 'kn', 'aRow', 'aK', 'bRow', 'bPanel', 'cRow', 'mode', 'bias', 'relu'] as const;
/** The patch kernels' shared geometry (patches.wat). */
const PATCH = ['x', 'dst', 'nb', 'oh', 'ow', 'kh', 'rowBytes', 'segBytes', 'colStep', 'rowStep', 'imgBytes'] as const;
/** The window kernels' shared geometry (windows.wat). */
const WINDOW = ['x', 'y', 'nb', 'oh', 'ow', 'fh', 'fw', 'cBytes', 'rowBytes', 'imgBytes'] as const;
const BINARY = ['a', 'b', 'out', 'rows', 'rowBytes', 'bRow'] as const;
const UNARY = ['x', 'out', 'bytes'] as const;

export const BINARY_OPS = ['add', 'sub', 'mul', 'div'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];
export const UNARY_OPS = ['relu', 'step', 'square', 'sqrt'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

/** Each kernel function's parameters, in the order the .wat declares them. */
export const PARAMS = {
  gemm1: GEMM, gemm2: GEMM, gemm3: GEMM, gemm4: GEMM,
  panel8: ['src', 'dst', 'kn', 'panels', 'srcRow'],
  im2col4: [...PATCH, 'count'],
  im2col1: [...PATCH, 'count'],
  im2colT: [...PATCH, 'panelBytes'],
  col2im: [...PATCH, 'unused'],
  im2colS: [...PATCH, 'P1', 'Q1', 'P2', 'Q2', 'back'],
  filterGradImage: ['x', 'dy', 'out', 'oh', 'ow', 'kh', 'kw', 'ci', 'rowBytes', 'colStep', 'rowStep', 'coBytes'],
  maxPool: WINDOW,
  maxPoolGrad: [...WINDOW, 'dy', 'dx'],
  sumBlocks: ['src', 'rows', 'rowBytes', 'block', 'dst'],
  add_vv: BINARY, add_vs: BINARY, add_sv: BINARY,
  sub_vv: BINARY, sub_vs: BINARY, sub_sv: BINARY,
  mul_vv: BINARY, mul_vs: BINARY, mul_sv: BINARY,
  div_vv: BINARY, div_vs: BINARY, div_sv: BINARY,
  relu: UNARY, step: UNARY, square: UNARY, sqrt: UNARY,
} as const satisfies Record<string, readonly string[]>;

export type KernelName = keyof typeof PARAMS;
/** Named arguments of a kernel: byte addresses and sizes, counts, flags (0 / 1). */
export type KernelArgs<K extends KernelName> = Record<(typeof PARAMS)[K][number], number>;
/** A kernel call as the pool ships it to a thread: function index, then the arguments in order. */
export type Call = [fn: number, ...args: number[]];

export const KERNEL_NAMES = Object.keys(PARAMS) as KernelName[];

/** A call of kernel `name`; a missing or non-numeric argument is an error naming it. */
export function kernelCall<K extends KernelName>(name: K, args: KernelArgs<K>): Call {
  const values = PARAMS[name].map((p: string) => {
    const v = (args as Record<string, unknown>)[p];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`wasm kernel ${name}: argument ${p} is ${String(v)}`);
    return v;
  });
  return [KERNEL_NAMES.indexOf(name), ...values];
}

/** The modules of shared/engine/kernels/, in load order (scripts/build-kernels.ts builds the same list). */
export const KERNEL_MODULES = ['gemm', 'patches', 'windows', 'lanes'] as const;
export type KernelModule = (typeof KERNEL_MODULES)[number];

/** The binary of one module: memory import shared or not; gemm with relaxed-SIMD madd or mul + add. */
export function kernelBinary(name: KernelModule, shared: boolean, fma = false): Uint8Array<ArrayBuffer> {
  const file = `${name}${name === 'gemm' && fma ? '.fma' : ''}${shared ? '.shared' : ''}.wasm`;
  return new Uint8Array(readFileSync(new URL(`./kernels/wasm/${file}`, import.meta.url)));
}
