import * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../errors.js';

/**
 * Compute-backend selection, done once per process at start-up (docs/performance.md, section Compute backend):
 * native TensorFlow when @tensorflow/tfjs-node loads, else wasm with the project's own
 * training kernels, else pure-JS cpu. Every result records what ran.
 */
export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  backend: BackendName;
  threads: number;
  tfjsVersion: string;
}

let current: BackendInfo | undefined;

async function tryTensorflow(): Promise<boolean> {
  try {
    // Optional dependency: absent wherever its installer could not download libtensorflow.
    const name = '@tensorflow/tfjs-node';
    await import(name);
    return tf.findBackend('tensorflow') !== null && (await tf.setBackend('tensorflow'));
  } catch {
    return false;
  }
}

async function tryWasm(threads: number): Promise<boolean> {
  try {
    const kernels = await import('./wasm-kernels.js');
    await kernels.prepareWasm(threads);
    if (!(await tf.setBackend('wasm'))) return false;
    kernels.registerWasmKernels();
    await kernels.wasmHelpersReady();
    return true;
  } catch (e) {
    if (process.env.TRANSFERLAB_DEBUG) console.error('wasm backend failed to load:', e);
    return false;
  }
}

async function threadCount(backend: BackendName): Promise<number> {
  if (backend === 'wasm') return (await import('./wasm-kernels.js')).wasmThreads();
  if (backend === 'cpu') return 1;
  return Number(process.env.TF_NUM_INTRAOP_THREADS) || (await import('node:os')).availableParallelism();
}

function parseBackend(requested: string | undefined): BackendName | undefined {
  if (requested === undefined || requested === '' || requested === 'auto') return undefined;
  if ((BACKENDS as readonly string[]).includes(requested)) return requested as BackendName;
  throw new TransferlabError(
    'unknown_backend',
    `unknown backend "${requested}"; choose one of: ${BACKENDS.join(', ')} (or auto)`,
  );
}

/**
 * Choose and start the backend. `requested` comes from --backend, else TFJS_BACKEND, else auto.
 * Asking for one that cannot start is an error naming the ones that can.
 */
export async function initBackend(
  requested: string | undefined = process.env.TFJS_BACKEND,
  threads = Number(process.env.TRANSFERLAB_THREADS) || 0,
): Promise<BackendInfo> {
  const want = parseBackend(requested);
  // Silences tfjs's "install tfjs-node" banner: choosing the backend is this module's job.
  tf.env().set('PROD', true);
  if (current && (want === undefined || want === current.backend)) return current;
  const wasmThreads = threads > 0 ? threads : (await import('node:os')).availableParallelism();
  const starters: Record<BackendName, () => Promise<boolean>> = {
    tensorflow: tryTensorflow,
    wasm: () => tryWasm(wasmThreads),
    cpu: () => tf.setBackend('cpu'),
  };
  const order = want ? [want] : [...BACKENDS];
  for (const name of order) {
    if (await starters[name]()) {
      await tf.ready();
      current = { backend: name, threads: await threadCount(name), tfjsVersion: tf.version.tfjs };
      return current;
    }
  }
  const available: string[] = [];
  for (const name of BACKENDS) if (name !== want && (await starters[name]())) available.push(name);
  throw new TransferlabError(
    'backend_unavailable',
    `backend "${want}" is not available here; available: ${available.join(', ') || 'none'}` +
      (want === 'tensorflow' ? ' (install @tensorflow/tfjs-node where its libtensorflow download is reachable)' : ''),
  );
}

/** The backend chosen by initBackend; throws if called before it. */
export function backendInfo(): BackendInfo {
  if (!current) throw new TransferlabError('backend_not_initialised', 'initBackend() must run first', 500);
  return current;
}

/** One line for start-up banners. */
export function describeBackend(info: BackendInfo = backendInfo()): string {
  return `backend ${info.backend} (${info.threads} thread${info.threads === 1 ? '' : 's'}, tfjs ${info.tfjsVersion})`;
}
