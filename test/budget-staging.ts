import { createHttpOracle, type CountingOracle } from '../adversary/oracle/client.js';
import { createRng } from '../shared/random.js';
import { bearer, call, labelUint8 } from './victim-client.js';

/**
 * Staging a budget that runs out inside a chosen measure: another client of the same key (a key
 * shared by two users) spends it down over real HTTP at the moment the measure begins, so the run
 * passed its budget check at the start and is refused part-way, as in the field.
 */
export async function budgetOf(url: string, key: string): Promise<{ used: number; limit: number | null }> {
  const r = await call(`${url}/v1/budget`, { headers: bearer(key) });
  if (r.status !== 200) throw new Error(`GET /v1/budget → ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body as { used: number; limit: number | null };
}

/** Spend the key down to `left` images with fresh random 28×28 images, each charged. */
export async function spendDownTo(url: string, key: string, left: number): Promise<void> {
  const rng = createRng(left + 17);
  for (;;) {
    const { used, limit } = await budgetOf(url, key);
    const spend = Math.min(500, (limit ?? 0) - used - left);
    if (spend <= 0) return;
    const pixels = Uint8Array.from({ length: spend * 784 }, () => Math.floor(rng() * 256));
    const r = await labelUint8(url, pixels, bearer(key));
    if (r.status !== 200) throw new Error(`spending the key down: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }
}

export interface Staging {
  /** True once the measure to cut has begun (from the run's log lines or rounds). */
  armed: () => boolean;
  /** Images the key keeps once the other client has spent. */
  left: number;
}

/** The key's oracle over the run folder; its first label call after `armed` first lets the other client spend the key down. */
export async function stagedOracle(url: string, key: string, out: string, stage?: Staging): Promise<CountingOracle> {
  const oracle = await createHttpOracle({ url, apiKey: key, cacheDir: out });
  if (!stage) return oracle;
  let spent = false;
  return {
    ...oracle,
    label: async (images, count, purpose) => {
      if (!spent && stage.armed()) {
        spent = true;
        await spendDownTo(url, key, stage.left);
      }
      return oracle.label(images, count, purpose);
    },
  };
}

export const seen = (lines: string[], start: string) => (): boolean => lines.some((l) => l.startsWith(start));
