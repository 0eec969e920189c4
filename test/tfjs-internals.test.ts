/**
 * The project's wasm kernels reach into tfjs-backend-wasm beyond its public API (shared/engine/wasm-threads.ts,
 * wasm-pool.ts). These checks fail, each with a message saying which workaround to revisit, when an
 * upgrade changes one of those internals; package.json pins the versions they were written against.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_REQUIRES } from '../shared/engine/wasm-threads.js';
import { prepareWasm, registerWasmKernels, wasmThreads } from '../shared/engine/wasm-kernels.js';
import { poolFor } from '../shared/engine/wasm-pool.js';
import { restoreAdam, snapshotAdam } from '../shared/model/optimizer-state.js';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>; peerDependencies: Record<string, string>;
};
const installed = (name: string): string => (require(`${name}/package.json`) as { version: string }).version;
const BUNDLE = readFileSync(require.resolve('@tensorflow/tfjs-backend-wasm'), 'utf8');
const contains = (what: string, needle: string): void => {
  expect(BUNDLE.includes(needle), `tfjs-backend-wasm's Node bundle no longer has ${what} (${JSON.stringify(needle)})`).toBe(true);
};

describe('the tfjs packages the kernels rely on', () => {
  it('are pinned to exact versions, installed as pinned, and every @tensorflow package matches', () => {
    const pinned = pkg.dependencies['@tensorflow/tfjs'];
    for (const name of ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm']) {
      expect(pkg.dependencies[name], `${name} must be pinned exactly: its internals are used`).toMatch(/^\d+\.\d+\.\d+$/);
      expect(installed(name), `${name} installed differs from package.json; run npm ci`).toBe(pkg.dependencies[name]);
    }
    expect(pkg.peerDependencies['@tensorflow/tfjs-node']).toBe(pinned);
    for (const name of ['tfjs-core', 'tfjs-backend-cpu', 'tfjs-layers', 'tfjs-converter']) {
      expect(installed(`@tensorflow/${name}`), `@tensorflow/${name} pulled at another version than tfjs`).toBe(pinned);
    }
  });
});

describe('tfjs-backend-wasm internals the workarounds depend on', () => {
  it('the Node bundle hoists exactly the require$$N names the pthread bootstrap defines', () => {
    const declared = Object.fromEntries([...BUNDLE.matchAll(/var (require\$\$\d+) = require\('([\w:/]+)'\);/g)].map((m) => [m[1], m[2]]));
    expect(declared, 'the bundle\'s hoisted requires changed: update BUNDLE_REQUIRES in shared/engine/wasm-threads.ts').toEqual(BUNDLE_REQUIRES);
    contains('the rollup `commonjsGlobal` name the bootstrap defines', 'commonjsGlobal');
  });

  it('multi-threading is still switched off in Node by the flag prepareWasm overrides', () => {
    contains('the WASM_HAS_MULTITHREAD_SUPPORT flag', "registerFlag('WASM_HAS_MULTITHREAD_SUPPORT'");
    contains('the IS_NODE switch-off (prepareWasm may no longer be needed)', "if (ENV.get('IS_NODE')) {\n            return [2 /*return*/, false];");
  });

  it('pthread workers still get their main script as a Blob in a "load" message, as the bootstrap expects', () => {
    contains('the Blob-wrapped main script', 'new Blob(["var WasmBackendModuleThreadedSimd = "');
    contains('the "load" message carrying urlOrBlob', '"cmd": "load", "handlers": handlers, "urlOrBlob"');
  });

  it('the thread count still comes from os.cpus(), which prepareWasm patches during start-up', () => {
    contains('the logical-core count from os.cpus()', 'require$$4.cpus().length');
  });

  describe('after start-up', () => {
    beforeAll(async () => {
      await prepareWasm();
      expect(await tf.setBackend('wasm')).toBe(true);
      registerWasmKernels();
    });

    it('the Emscripten module exposes its memory where the pool looks for it', () => {
      const w = (tf.backend() as BackendWasm).wasm as unknown as { wasmMemory?: unknown; asm?: { memory?: unknown } };
      const mem = w.wasmMemory ?? w.asm?.memory;
      expect(mem instanceof WebAssembly.Memory, 'neither wasm.wasmMemory nor wasm.asm.memory is a WebAssembly.Memory').toBe(true);
      if (os.availableParallelism() > 1) {
        expect((mem as WebAssembly.Memory).buffer instanceof SharedArrayBuffer, 'threaded start gave an unshared memory').toBe(true);
      }
      expect(poolFor(tf.backend() as BackendWasm), 'the kernels could not bind to the backend memory').not.toBeNull();
    });

    it('the backend has the methods the kernels call', () => {
      const b = tf.backend() as unknown as Record<string, unknown>;
      for (const m of ['getMemoryOffset', 'typedArrayFromHeap', 'makeOutput', 'disposeData', 'readSync', 'incRef']) {
        expect(typeof b[m], `BackendWasm.${m} is gone`).toBe('function');
      }
    });

    it('the os.cpus patch gives one XNNPACK thread per core', () => {
      const cores = os.availableParallelism();
      expect(wasmThreads(), 'threaded start or the os.cpus patch stopped working').toBe(cores > 1 ? Math.min(cores, 8) : 1);
    });
  });
});

// The bundle the checks above read is the one Node loads.
it('reads the bundle Node resolves', () => {
  expect(path.basename(require.resolve('@tensorflow/tfjs-backend-wasm'))).toBe('tf-backend-wasm.node.js');
});

// The training checkpoint copies Adam's state out of tfjs-core's private fields (shared/model/optimizer-state.ts).
it("Adam's state survives a snapshot and restore exactly: the next step matches the uninterrupted optimizer's", async () => {
  const run = (opt: tf.Optimizer, v: tf.Variable) => opt.minimize(() => tf.sum(tf.square(tf.sub(v, tf.tensor1d([3, -1, 0.5])))));
  const v = tf.variable(tf.tensor1d([0.2, 0.1, -0.3]));
  const a = tf.train.adam(0.1);
  for (let i = 0; i < 5; i++) run(a, v);
  const state = snapshotAdam(a);
  expect(state.iterations, "AdamOptimizer.iterations_ is not where snapshotAdam reads it").toBe(5);
  expect(state.moments.length, 'AdamOptimizer.accumulatedFirstMoment / SecondMoment changed').toBe(2);
  const w = tf.variable(v.clone());
  const b = await restoreAdam(0.1, state);
  run(a, v);
  run(b, w);
  expect(Array.from(w.dataSync())).toEqual(Array.from(v.dataSync()));
  tf.dispose([v, w]);
  a.dispose();
  b.dispose();
});
