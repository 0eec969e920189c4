/**
 * Assembles the project's WebAssembly kernels from their text (.wat) with wabt, into the binaries the
 * code loads: shared/engine/kernels/*.wat into shared/engine/kernels/wasm/, victim/detect/nearest.wat into victim/detect/nearest.wasm.
 *
 *   npm run build:kernels            write the binaries
 *   npm run build:kernels -- --check  fail if a committed binary differs from what its .wat assembles to
 *
 * The binaries are committed (so `npm ci --omit=dev` and a machine without wabt still run), and
 * test/kernel-build.test.ts rebuilds them and compares the bytes, so a .wat edit without a rebuild fails.
 * Each shared kernel module is built with its memory import shared (the threaded backend's memory) and
 * unshared (the single-threaded backend's); gemm.wat also without relaxed SIMD, for a V8 that refuses it.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';
import { isMain, runMain } from '../shared/cli.js';
import { KERNEL_MODULES, type KernelModule } from '../shared/engine/wasm-modules.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FEATURES = { simd: true, threads: true, relaxed_simd: true };
const SHARED_MEMORY = '(memory 1 65536 shared)';

export interface Variant { shared: boolean; fma: boolean }
export interface Binary { source: string; file: string; bytes: Uint8Array }

/** Where a kernel module's binary lives, relative to the repository (as shared/engine/wasm-modules.ts loads it). */
const kernelBinaryPath = (name: KernelModule, v: Variant): string =>
  `shared/engine/kernels/wasm/${name}${name === 'gemm' && v.fma ? '.fma' : ''}${v.shared ? '.shared' : ''}.wasm`;

/** `text` with its one shared memory import made unshared. */
function unshared(text: string, source: string): string {
  const parts = text.split(SHARED_MEMORY);
  if (parts.length !== 2) throw new Error(`${source}: expected exactly one "${SHARED_MEMORY}" import`);
  return parts.join('(memory 1)');
}

/** `text` with every fused multiply-add written as a multiply then an add (the same rounding as XNNPACK's). */
function withoutFma(text: string, source: string): string {
  const operand = String.raw`(\(local\.get \$\w+\))`;
  const madd = new RegExp(String.raw`\(f32x4\.relaxed_madd ${operand} ${operand} ${operand}\)`, 'g');
  const code = text.replace(/;;[^\n]*/g, ''); // comments may name the instruction
  const out = code.replace(madd, '(f32x4.add (f32x4.mul $1 $2) $3)');
  if (out === code || out.includes('relaxed_madd')) {
    throw new Error(`${source}: relaxed_madd must take three (local.get $x) operands to be rewritten`);
  }
  return out;
}

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
function assemble(wabt: Wabt, source: string, text: string): Uint8Array {
  const module = wabt.parseWat(source, text, FEATURES);
  try {
    module.resolveNames();
    // wabt.js takes the features here too, though its typings omit the argument.
    (module.validate as (this: typeof module, features: typeof FEATURES) => void).call(module, FEATURES);
    // Function and local names go into the binary's name section: profiles and stack traces show them.
    return module.toBinary({ write_debug_names: true }).buffer;
  } finally {
    module.destroy();
  }
}

/** Every binary, assembled from the .wat files now in the tree. */
export async function buildKernels(): Promise<Binary[]> {
  const wabt = await wabtInit();
  const out: Binary[] = [];
  for (const name of KERNEL_MODULES) {
    const source = `shared/engine/kernels/${name}.wat`;
    const text = readFileSync(path.join(ROOT, source), 'utf8');
    for (const shared of [true, false]) {
      for (const fma of name === 'gemm' ? [true, false] : [false]) {
        let t = shared ? text : unshared(text, source);
        if (name === 'gemm' && !fma) t = withoutFma(t, source);
        out.push({ source, file: kernelBinaryPath(name, { shared, fma }), bytes: assemble(wabt, source, t) });
      }
    }
  }
  const nearest = 'victim/detect/nearest.wat';
  out.push({ source: nearest, file: 'victim/detect/nearest.wasm', bytes: assemble(wabt, nearest, readFileSync(path.join(ROOT, nearest), 'utf8')) });
  return out;
}

/** The binaries whose committed bytes differ from a fresh build (missing ones included). */
export async function staleKernels(): Promise<string[]> {
  const stale: string[] = [];
  for (const b of await buildKernels()) {
    let have: Uint8Array | undefined;
    try { have = readFileSync(path.join(ROOT, b.file)); } catch { /* missing */ }
    if (!have || Buffer.compare(Buffer.from(have), Buffer.from(b.bytes)) !== 0) stale.push(`${b.file} (from ${b.source})`);
  }
  return stale;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--check')) {
    const stale = await staleKernels();
    for (const s of stale) console.error(`out of date: ${s}; run npm run build:kernels`);
    return stale.length ? 1 : 0;
  }
  for (const b of await buildKernels()) {
    mkdirSync(path.dirname(path.join(ROOT, b.file)), { recursive: true });
    writeFileSync(path.join(ROOT, b.file), b.bytes);
    console.log(`${b.file}  ${b.bytes.length} bytes  from ${b.source}`);
  }
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
