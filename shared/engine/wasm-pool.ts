/**
 * The project's SIMD kernels (shared/engine/kernels/*.wat, loaded by wasm-modules.ts) bound to the backend's
 * memory, and a helper thread that runs the same modules on the same (shared) memory: a kernel cuts its
 * work into two fixed parts, runs one here and hands the other over (Atomics, no copies). Fixed parts,
 * so results never depend on whether the helper is up.
 */
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { KERNEL_MODULES, KERNEL_NAMES, kernelBinary, kernelCall, type Call } from './wasm-modules.js';

export { kernelCall, type Call } from './wasm-modules.js';

/** Where a tensor's data sits in the memory the pool's kernels work on. */
export const offset = (backend: BackendWasm, t: { dataId: object }): number => backend.getMemoryOffset(t.dataId);

/** The two fixed parts [start, end) of `n` units a kernel cuts its work into (empty parts dropped). */
export function twoParts(n: number): Array<[number, number]> {
  const half = Math.ceil(n / 2);
  return ([[0, half], [half, n]] as Array<[number, number]>).filter(([s, e]) => e > s);
}

/**
 * Below these sizes a kernel runs both its parts on the calling thread: handing a part over cost more than
 * half of a small op saves (measured: a 204,800-float multiply took 90 µs shared, 52 µs on one thread, though a
 * bare hand-over and back is ~20 µs). Elementwise and window kernels count floats, matrix products and
 * convolutions multiply-adds (convolutions higher: a one-channel layer on RayS's batches of 50 ran faster on
 * one thread). Set from kernel timings of paper-cnn's training and inference steps (docs/performance.md).
 */
export const SHARE_MIN_FLOATS = 1 << 19;
export const SHARE_MIN_MACS = 1 << 22;
export const SHARE_MIN_CONV_MACS = 1 << 24;

export interface Pool {
  /**
   * Runs plans[0] here and plans[1] on the helper thread (or here after plans[0] if it is not up, or
   * when `share` is false: too little work to be worth the hand-over). The same parts either way.
   */
  run(plans: Call[][], share?: boolean): void;
  /** Whether the helper thread is up (always true when there is none to wait for). */
  ready(): boolean;
  /** How many runs have handed a part to the helper thread so far. */
  handOvers(): number;
  fma: boolean;
}

/**
 * Whether V8 takes relaxed SIMD: on by default from V8 11.4 (Node 22, 24); V8 11.3 (Node 20) has it
 * behind a flag, which later V8s no longer know, so the flag is set only where the module is refused.
 */
function relaxedSimd(shared: boolean): boolean {
  const probe = kernelBinary('gemm', shared, true);
  if (WebAssembly.validate(probe)) return true;
  try { v8.setFlagsFromString('--experimental-wasm-relaxed-simd'); } catch { /* not this V8 */ }
  return WebAssembly.validate(probe);
}

type Modules = { modules: WebAssembly.Module[]; fma: boolean };
const compileAll = (shared: boolean, fma: boolean): WebAssembly.Module[] =>
  KERNEL_MODULES.map((name) => new WebAssembly.Module(kernelBinary(name, shared, fma)));

/** The instantiated kernels' functions, in KERNEL_NAMES order. */
function instantiate(modules: WebAssembly.Module[], mem: WebAssembly.Memory): Array<(...a: number[]) => void> {
  const all: Record<string, (...a: number[]) => void> = {};
  for (const m of modules) Object.assign(all, new WebAssembly.Instance(m, { env: { mem } }).exports);
  return KERNEL_NAMES.map((name) => {
    if (typeof all[name] !== 'function') throw new Error(`wasm pool: no function ${name} in the kernel modules`);
    return all[name];
  });
}

function compile(shared: boolean): Modules {
  // Where relaxed SIMD is refused, or gives a wrong a*b+c, the tiles use plain mul + add.
  for (const fma of relaxedSimd(shared) ? [true, false] : [false]) {
    try {
      const modules = compileAll(shared, fma);
      if (fma && !maddWorks(modules, shared)) continue;
      return { modules, fma };
    } catch (e) {
      if (!fma) throw e;
    }
  }
  throw new Error('unreachable');
}

/** Relaxed madd must compute a*b+c here (an early draft of the proposal used other opcodes). */
function maddWorks(modules: WebAssembly.Module[], shared: boolean): boolean {
  const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared } as WebAssembly.MemoryDescriptor);
  const fns = instantiate(modules, mem);
  const f = new Float32Array(mem.buffer);
  // A (one row, k = 1) = 2 at byte 0; B (one 8-column panel) = 3..10 at byte 40; C at byte 200.
  f.set([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8, 9, 10], 0);
  const [i, ...args] = kernelCall('gemm1', {
    a: 0, b: 40, c: 200, m: 1, n: 8, kn: 1, aRow: 4, aK: 4, bRow: 32, bPanel: 32, cRow: 32, mode: 0, bias: 0, relu: 0,
  });
  fns[i](...args);
  return [6, 8, 10, 12, 14, 16, 18, 20].every((v, j) => f[50 + j] === v);
}

const HELPER = `
const { workerData } = require('worker_threads');
const { modules, mem, ctl: sab, names } = workerData;
const ctl = new Int32Array(sab);
const ex = Object.assign({}, ...modules.map((m) => new WebAssembly.Instance(m, { env: { mem } }).exports));
const fns = names.map((n) => ex[n]);
Atomics.store(ctl, 2, 1);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  try {
    for (let c = 0, p = 4; c < ctl[3]; c++) {
      const argc = ctl[p + 1];
      fns[ctl[p]](...ctl.subarray(p + 2, p + 2 + argc));
      p += 2 + argc;
    }
    Atomics.store(ctl, 1, seen);
  } catch (e) {
    Atomics.store(ctl, 1, -seen);
  }
  Atomics.notify(ctl, 1);
}`;

const cache = new WeakMap<object, Pool | null>();
let helperOn = true;
/** Runs every part on the calling thread while off (tests use it to show results do not depend on it). */
export function useHelperThread(on: boolean): void {
  helperOn = on;
}

/** The kernels bound to this backend's memory (null if they cannot be built). */
export function poolFor(backend: BackendWasm): Pool | null {
  if (cache.has(backend)) return cache.get(backend) ?? null;
  const w = backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  const mem = w.wasmMemory ?? w.asm?.memory;
  let kit: Pool | null = null;
  try {
    if (mem) kit = start(mem);
  } catch (e) {
    console.warn(`wasm: SIMD pool unavailable (${String(e)}); using XNNPACK convolutions`);
  }
  cache.set(backend, kit);
  return kit;
}

function start(mem: WebAssembly.Memory): Pool {
  const shared = typeof SharedArrayBuffer !== 'undefined' && mem.buffer instanceof SharedArrayBuffer;
  const { modules, fma } = compile(shared);
  const fns = instantiate(modules, mem);
  const local = (calls: Call[]): void => { for (const [f, ...args] of calls) fns[f](...args); };
  const ctl = shared ? new Int32Array(new SharedArrayBuffer(4 * 4096)) : null;
  if (ctl) {
    const helper = new Worker(HELPER, { eval: true, workerData: { modules, mem, ctl: ctl.buffer, names: KERNEL_NAMES } });
    helper.unref();
    helper.on('error', (e) => console.warn(`wasm: pool helper thread stopped (${String(e)})`));
  }
  let seq = 0;
  let handOvers = 0;
  const run = (plans: Call[][], share = true): void => {
    const [mine, theirs = []] = plans;
    const words = theirs.reduce((s, c) => s + c.length + 1, 4);
    if (!share || !ctl || !helperOn || Atomics.load(ctl, 2) !== 1 || theirs.length === 0 || words > ctl.length) {
      local(mine);
      local(theirs);
      return;
    }
    let p = 4;
    for (const [f, ...args] of theirs) {
      ctl[p] = f;
      ctl[p + 1] = args.length;
      ctl.set(args, p + 2);
      p += 2 + args.length;
    }
    ctl[3] = theirs.length;
    handOvers++;
    seq = (seq % 0x3fffffff) + 1;
    Atomics.store(ctl, 0, seq);
    Atomics.notify(ctl, 0);
    local(mine);
    const t0 = Date.now();
    for (let done = Atomics.load(ctl, 1); done !== seq; done = Atomics.load(ctl, 1)) {
      if (done === -seq) throw new Error('wasm pool helper thread failed');
      if (Date.now() - t0 > 60_000) throw new Error('wasm pool helper thread stopped answering');
      Atomics.wait(ctl, 1, done, 1000);
    }
  };
  return { run, fma, ready: () => !ctl || Atomics.load(ctl, 2) === 1, handOvers: () => handOvers };
}

/** Resolves once the helper thread has started (immediately when there is none). */
export async function poolReady(backend: BackendWasm, timeoutMs = 5000): Promise<void> {
  const kit = poolFor(backend);
  if (!kit) return;
  const t0 = Date.now();
  while (!kit.ready() && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 5));
}
