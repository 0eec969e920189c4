/**
 * The project's SIMD kernels (shared/engine/kernels/*.wat, loaded by wasm-modules.ts) bound to the backend's
 * memory, and a helper thread that runs the same modules on the same (shared) memory: a kernel cuts its
 * work into two fixed parts, runs one here and hands the other over (Atomics, no copies), or into a list of
 * independent chunks both threads take from (runChunks). Fixed parts and chunks, so results never depend on
 * whether the helper is up or which thread ran what.
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

/** `n` units cut into at most `k` fixed parts [start, end) of ⌈n/k⌉ (chunks for runChunks). */
export function parts(n: number, k: number): Array<[number, number]> {
  const size = Math.max(1, Math.ceil(n / k)), out: Array<[number, number]> = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
}

export interface Pool {
  /** Runs plans[0] here and plans[1] on the helper thread (or here after plans[0] if it is not up). */
  run(plans: Call[][]): void;
  /**
   * Runs `count` independent chunks on both threads, each thread taking the next one left from its end of
   * the list (this one from the front, the helper from the back), so neither waits while the other still has
   * work queued; `calls(i, thread)` are chunk i's calls with that thread's own scratch (0 here, 1 the helper).
   * The chunks and their calls are fixed, so results do not depend on which thread ran which.
   */
  runChunks(count: number, calls: (chunk: number, thread: 0 | 1) => Call[]): void;
  /** Whether the helper thread is up (always true when there is none to wait for). */
  ready(): boolean;
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
const calls = (p, n) => {
  for (let c = 0; c < n; c++) {
    const argc = ctl[p + 1];
    fns[ctl[p]](...ctl.subarray(p + 2, p + 2 + argc));
    p += 2 + argc;
  }
};
for (;;) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  try {
    if (ctl[3] >= 0) calls(4, ctl[3]);
    else {
      // Shared chunks: claim the last one left (word 4 holds front | back << 16); chunk i's calls start
      // at ctl[8 + 2i] and number ctl[9 + 2i].
      for (;;) {
        const w = Atomics.load(ctl, 4), f = w & 0xffff, b = w >>> 16;
        if (f >= b) break;
        if (Atomics.compareExchange(ctl, 4, w, f | ((b - 1) << 16)) !== w) continue;
        calls(ctl[8 + 2 * (b - 1)], ctl[9 + 2 * (b - 1)]);
      }
    }
    Atomics.store(ctl, 1, seen);
  } catch (e) {
    Atomics.store(ctl, 1, -seen);
  }
  Atomics.notify(ctl, 1);
}`;

/** The words of the control block the helper reads its calls from (256 KiB), and the most chunks one run hands over. */
const CTL_WORDS = 1 << 16;
const MAX_CHUNKS = 0x7fff;

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
  const ctl = shared ? new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS)) : null;
  if (ctl) {
    const helper = new Worker(HELPER, { eval: true, workerData: { modules, mem, ctl: ctl.buffer, names: KERNEL_NAMES } });
    helper.unref();
    helper.on('error', (e) => console.warn(`wasm: pool helper thread stopped (${String(e)})`));
  }
  const helperUp = (): boolean => ctl !== null && helperOn && Atomics.load(ctl, 2) === 1;
  /** Writes calls from ctl[p] on (function, argument count, arguments); the word after the last one. */
  const write = (c: Int32Array, p: number, calls: Call[]): number => {
    for (const [f, ...args] of calls) {
      c[p] = f;
      c[p + 1] = args.length;
      c.set(args, p + 2);
      p += 2 + args.length;
    }
    return p;
  };
  let seq = 0;
  /** Wakes the helper on what ctl now holds, runs `mine` here, and waits for the helper to finish. */
  const together = (c: Int32Array, mine: () => void): void => {
    seq = (seq % 0x3fffffff) + 1;
    Atomics.store(c, 0, seq);
    Atomics.notify(c, 0);
    mine();
    const t0 = Date.now();
    for (let done = Atomics.load(c, 1); done !== seq; done = Atomics.load(c, 1)) {
      if (done === -seq) throw new Error('wasm pool helper thread failed');
      if (Date.now() - t0 > 60_000) throw new Error('wasm pool helper thread stopped answering');
      Atomics.wait(c, 1, done, 1000);
    }
  };
  const run = (plans: Call[][]): void => {
    const [mine, theirs = []] = plans;
    const words = theirs.reduce((s, c) => s + c.length + 1, 4);
    if (!ctl || !helperUp() || theirs.length === 0 || words > ctl.length) {
      local(mine);
      local(theirs);
      return;
    }
    write(ctl, 4, theirs);
    ctl[3] = theirs.length;
    together(ctl, () => local(mine));
  };
  const runChunks = (count: number, calls: (chunk: number, thread: 0 | 1) => Call[]): void => {
    if (!ctl || !helperUp() || count < 2 || count > MAX_CHUNKS) {
      for (let i = 0; i < count; i++) local(calls(i, 0));
      return;
    }
    // The helper's calls for every chunk (it may claim any), after a table of where each one starts.
    let p = 8 + 2 * count;
    for (let i = 0; i < count; i++) {
      const mine = calls(i, 1);
      if (p + mine.reduce((s, c) => s + c.length + 1, 0) > ctl.length) {
        for (let j = 0; j < count; j++) local(calls(j, 0)); // too many calls to hand over: all here
        return;
      }
      ctl[8 + 2 * i] = p;
      ctl[9 + 2 * i] = mine.length;
      p = write(ctl, p, mine);
    }
    ctl[3] = -1;
    Atomics.store(ctl, 4, count << 16);
    together(ctl, () => {
      for (;;) {
        const w = Atomics.load(ctl, 4), f = w & 0xffff, b = w >>> 16;
        if (f >= b) return;
        if (Atomics.compareExchange(ctl, 4, w, (f + 1) | (b << 16)) === w) local(calls(f, 0));
      }
    });
  };
  return { run, runChunks, fma, ready: () => !ctl || Atomics.load(ctl, 2) === 1 };
}

/** Resolves once the helper thread has started (immediately when there is none). */
export async function poolReady(backend: BackendWasm, timeoutMs = 5000): Promise<void> {
  const kit = poolFor(backend);
  if (!kit) return;
  const t0 = Date.now();
  while (!kit.ready() && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 5));
}
