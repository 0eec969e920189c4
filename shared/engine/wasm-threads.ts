/**
 * Multi-threaded start of the TF.js `wasm` backend in Node, so that training uses both cores.
 * tfjs-backend-wasm 4.22 never uses pthreads in Node, for three reasons, each worked around here only
 * while the backend initialises:
 * 1. flag WASM_HAS_MULTITHREAD_SUPPORT is hard-wired false under IS_NODE -> we set it true;
 * 2. Emscripten starts its 8 pool workers from blob: URLs (worker script and main script are Blobs),
 *    which Node's Worker cannot load -> a Worker subclass evaluates the Blob contents instead;
 * 3. the C++ side uses min(requested, logical_cores / 2) threads, i.e. 1 on a 2-core machine ->
 *    os.cpus() reports twice the requested count during init.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { setWasmPaths, setThreadsCount, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { resolveObjectURL } from 'node:buffer';
import os from 'node:os';
import path from 'node:path';
import type { WorkerOptions } from 'node:worker_threads';

const require = createRequire(import.meta.url);

/**
 * The Node modules rollup hoisted into `require$$N` names in tfjs-backend-wasm's Node bundle, which the
 * Emscripten glue's text refers to (test/tfjs-internals.test.ts checks the bundle still declares exactly these).
 */
export const BUNDLE_REQUIRES: Readonly<Record<string, string>> = { require$$0: 'fs', require$$1: 'path', require$$3: 'perf_hooks', require$$4: 'os' };

// Runs inside each pthread worker (CommonJS, eval mode). The glue's text, evaluated there, refers to the
// bundle's hoisted `require$$N` / `commonjsGlobal` names: define them.
const WORKER_BOOTSTRAP = `
const { parentPort, workerData } = require('worker_threads');
Object.assign(globalThis, { commonjsGlobal: globalThis, require,
  ${Object.entries(BUNDLE_REQUIRES).map(([name, mod]) => `${name}: require('${mod}')`).join(', ')} });
const fail = (e) => setImmediate(() => { throw e; });
(async () => {
  (0, eval)(await workerData.text());              // Emscripten's worker.js (sets self.onmessage)
  const importScripts0 = globalThis.importScripts;
  globalThis.importScripts = (f) => { if (f !== '__preloaded__') importScripts0(f); };
  parentPort.removeAllListeners('message');
  let chain = Promise.resolve();                    // keeps message order across the async load
  parentPort.on('message', (data) => {
    chain = chain.then(async () => {
      if (data && data.cmd === 'load' && typeof data.urlOrBlob !== 'string') {
        (0, eval)(await data.urlOrBlob.text());     // defines WasmBackendModuleThreadedSimd
        data.urlOrBlob = '__preloaded__';
      }
      globalThis.onmessage({ data });
    }).catch(fail);
  });
})().catch(fail);
`;

let prepared = false;

/**
 * Call once before `tf.setBackend('wasm')`. Points the backend at its .wasm files in node_modules and,
 * when threads > 1, arranges for the multi-threaded SIMD binary to start with that many threads.
 * If the threaded start fails, it falls back to the single-threaded binary.
 */
export async function prepareWasm(threads = os.availableParallelism()): Promise<void> {
  if (prepared) return;
  prepared = true;
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(dist + path.sep);
  if (threads <= 1) return;
  if ('wasm' in tf.engine().registry) { // (findBackend() would initialise it)
    console.warn('wasm: backend already initialised before prepareWasm(); staying single-threaded');
    return;
  }
  const original = tf.findBackendFactory('wasm');
  if (original == null) throw new Error('wasm backend is not registered');
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    const restore = patchForPthreads(threads);
    try {
      return await original();
    } catch (e) {
      console.warn(`wasm: threaded start failed (${String(e)}); using one thread`);
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      setThreadsCount(1);
      return await original();
    } finally {
      restore();
    }
  }, 2 /* the package's WASM_PRIORITY */);
}

function patchForPthreads(threads: number): () => void {
  const wt = require('node:worker_threads') as typeof import('node:worker_threads');
  const RealWorker = wt.Worker;
  const realCpus = os.cpus;
  const g = globalThis as { Worker?: unknown };
  const hadGlobalWorker = 'Worker' in g;
  const globalWorker = g.Worker;
  class PthreadWorker extends RealWorker {
    constructor(url: string | URL, opts?: WorkerOptions) {
      const blob = typeof url === 'string' && url.startsWith('blob:') ? resolveObjectURL(url) : undefined;
      if (blob) super(WORKER_BOOTSTRAP, { eval: true, workerData: blob });
      else super(url, opts);
    }
    // Pool threads park forever in XNNPACK's pthreadpool; they must not keep the process alive.
    override ref(): void {}
  }
  wt.Worker = PthreadWorker;
  os.cpus = () => {
    const cpus = realCpus();
    while (cpus.length < 2 * threads) cpus.push(cpus[0]);
    return cpus;
  };
  return () => {
    wt.Worker = RealWorker;
    os.cpus = realCpus;
    // Emscripten copies worker_threads.Worker to a global; all pool workers exist by now.
    if (hadGlobalWorker) g.Worker = globalWorker;
    else delete g.Worker;
  };
}

/** XNNPACK thread count of the initialised wasm backend (0 if it has not been initialised). */
export function wasmThreads(): number {
  try {
    return getThreadsCount();
  } catch {
    return 0;
  }
}
