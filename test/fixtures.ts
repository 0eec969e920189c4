import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasModel } from '../shared/model/model-io.js';
import { tryPidLock } from '../shared/pid-lock.js';
import { NODE_TS } from '../victim/spawn.js';
import type { VictimTrainConfig } from '../victim/train/train.js';

/**
 * Shared test fixtures. Suites need a REAL trained model, but paper-cnn takes minutes to train, so
 * the tests use a small lenet trained once on 6,000 images and cached under .cache/test-models.
 * Bump the folder's version suffix when the recipe changes so stale caches are not reused.
 */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// v2: metadata.json records the dataset's shape and class names.
export const TEST_VICTIM_DIR = resolve(ROOT, '.cache/test-models/lenet-v2');
const RECIPE = { arch: 'lenet', epochs: 2, batchSize: 64, learningRate: 0.002, seed: 7, limit: 6000 };
/** The Fashion-MNIST test victim: the same lenet recipe on 4,000 Fashion-MNIST training images. */
export const FASHION_VICTIM_DIR = resolve(ROOT, '.cache/test-models/lenet-fashion-v1');
const FASHION_RECIPE = { ...RECIPE, dataset: 'fashion-mnist', epochs: 3, limit: 4000 };

/**
 * The test victim's model folder, training it first when it is not cached. Safe when several test
 * files (or processes) call it at once: one trains under a lock file, the others wait for the
 * atomically renamed folder to appear.
 */
export async function ensureTestVictim(dir = TEST_VICTIM_DIR, recipe: Omit<VictimTrainConfig, 'out'> = RECIPE): Promise<string> {
  if (hasModel(dir)) return dir;
  mkdirSync(dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  for (;;) {
    if (tryPidLock(lock).taken) break;
    await new Promise((r) => setTimeout(r, 250));
    if (hasModel(dir)) return dir;
  }
  try {
    if (!hasModel(dir)) {
      await trainWithDeadline({ ...recipe, out: dir });
    }
  } finally {
    if (existsSync(lock)) rmSync(lock, { force: true });
  }
  return dir;
}

/** A fixture's training takes seconds; one still running after this is stuck, not slow. */
const TRAIN_DEADLINE_MS = 150_000;

/**
 * Trains in a child process (test/train-fixture.ts), stopped and started again, up to three times, when it
 * passes the deadline: a rare stall inside the wasm backend's threads would otherwise hold the whole suite
 * (it blocks the process's only JavaScript thread, so no test timeout fires). A stopped training resumes
 * from its checkpoint, and its result is the same model.
 */
async function trainWithDeadline(recipe: VictimTrainConfig): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    // A stopped attempt left its checkpoint: the next one continues from it.
    const resume = attempt > 1 && existsSync(`${recipe.out}.training`);
    const child = spawn(NODE_TS[0], [...NODE_TS.slice(1), resolve(ROOT, 'test/train-fixture.ts'), JSON.stringify({ ...recipe, resume })], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), TRAIN_DEADLINE_MS);
    const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
    clearTimeout(timer);
    if (code === 0) return;
    if (code !== null || attempt === 3) throw new Error(`training the test victim ${recipe.out} failed (${code === null ? `stuck past ${TRAIN_DEADLINE_MS / 1000} s, ${attempt} times` : `exit ${code}`})`);
    console.warn(`training the test victim ${recipe.out} passed ${TRAIN_DEADLINE_MS / 1000} s; starting it again`);
  }
}

export const ensureFashionVictim = (): Promise<string> => ensureTestVictim(FASHION_VICTIM_DIR, FASHION_RECIPE);
