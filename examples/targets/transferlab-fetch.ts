/**
 * A target module (`--target module`) that reaches the README's victim over HTTP with fetch: the
 * client a user would write for an endpoint no target file fits. It sends `/v1/label`'s JSON body
 * (flat [0,1] pixels) and returns the labels; the oracle does the caching, counting and budget. A
 * module's error stops the run, so it retries a dropped connection itself (a keep-alive socket the
 * server closed as the request left), under one Idempotency-Key so the victim charges the batch once.
 *   export TRANSFERLAB_VICTIM_URL=http://127.0.0.1:8080 TRANSFERLAB_API_KEY=…
 *   npm run adversary -- run --target module --target-file examples/targets/transferlab-fetch.ts --out runs/module
 */
import { randomUUID } from 'node:crypto';

const PIXELS = 28 * 28;

// The shapes of adversary/targets/module-target.ts's TargetModuleInfo, written out so the file stands alone.
export const info: { inputShape: [number, number, number]; classes: number; range: [0, 1]; maxBatch: number } = { inputShape: [28, 28, 1], classes: 10, range: [0, 1], maxBatch: 100 };

export async function predict(images: Float32Array, count: number): Promise<number[]> {
  const base = process.env.TRANSFERLAB_VICTIM_URL;
  if (!base) throw new Error('set TRANSFERLAB_VICTIM_URL to the victim\'s base URL');
  const inputs = Array.from({ length: count }, (_, i) => Array.from(images.subarray(i * PIXELS, (i + 1) * PIXELS)));
  const key = process.env.TRANSFERLAB_API_KEY;
  const request = {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': randomUUID(), ...(key ? { Authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ inputs }),
  };
  let res: Response | undefined;
  for (let attempt = 1; !res; attempt++) {
    try {
      res = await fetch(new URL('/v1/label', base), request);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      if (attempt === 3) throw new Error(`POST /v1/label: ${(e as Error).message} (${cause?.code ?? cause?.message ?? 'no cause'}) after ${attempt} attempts`);
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
  if (!res.ok) throw new Error(`POST /v1/label: HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return ((await res.json()) as { labels: number[] }).labels;
}
