/**
 * Waiting out transient trouble, for every client that pays per request (the transferlab client and
 * each target): exponential backoff with full jitter inside a time window, a 429's Retry-After
 * honoured, and a final answer surfaced at once. One loop, so every target retries alike.
 */
import { VictimError } from './core.js';

export interface RetryOptions {
  /** Attempts per request, first included (default 20: the window is what normally ends retrying). */
  maxAttempts?: number;
  /** Backoff ceiling before jitter for attempt k is min(maxDelayMs, baseDelayMs·2^(k-1)) (defaults 200, 5000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Give up when the next wait would end later than this long after the first attempt (default 30000). */
  windowMs?: number;
}

export interface RetryInfo {
  url: string;
  /** The attempt that just failed (1 = first). */
  attempt: number;
  delayMs: number;
  elapsedMs: number;
  reason: string;
}

/** Errors worth waiting out: the server restarting, a dropped socket, a slow answer. */
export const TRANSIENT_NET = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'EPIPE', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** What one attempt came to: a value, something to wait out, or a refusal that is final. */
export type Attempt<T> =
  | { kind: 'ok'; status: number; value: T }
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  | { kind: 'final'; code: string; message: string; status: number; http?: number; rejected?: number[] };

/** Retry-After is delta-seconds or an HTTP date. */
export function retryAfterMs(header: unknown): number | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const when = Date.parse(header);
  return Number.isNaN(when) ? undefined : Math.max(0, when - Date.now());
}

export interface RetryPolicy {
  retries?: RetryOptions;
  onRetry?: (info: RetryInfo) => void;
  /** Source of jitter in [0,1) (default Math.random); inject a seeded one for repeatable waits. */
  random?: () => number;
}

/**
 * Runs `attempt` until it answers or refuses, waiting between tries; the caller builds its request
 * once, so every retry sends the same bytes. `url` and `who` name the server in the give-up message.
 */
export async function withRetries<T>(attempt: () => Promise<Attempt<T>>, url: string, who: string, policy: RetryPolicy): Promise<{ status: number; value: T; attempts: number }> {
  const r = policy.retries ?? {};
  const maxAttempts = r.maxAttempts ?? 20;
  const baseDelayMs = r.baseDelayMs ?? 200;
  const maxDelayMs = r.maxDelayMs ?? 5000;
  const windowMs = r.windowMs ?? 30_000;
  const random = policy.random ?? Math.random;
  const start = Date.now();
  for (let n = 1; ; n++) {
    const a = await attempt();
    if (a.kind === 'ok') return { status: a.status, value: a.value, attempts: n };
    // A 403 query_rejected carries the images the detector flagged, for an oracle that answers refusals.
    if (a.kind === 'final') throw new VictimError(a.code, a.message, a.status, a.http, n, a.rejected);
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
    const jittered = random() * ceiling;
    const delayMs = Math.round(a.retryAfterMs === undefined ? jittered : Math.max(a.retryAfterMs, jittered));
    const elapsedMs = Date.now() - start;
    if (n >= maxAttempts || elapsedMs + delayMs > windowMs) {
      throw new VictimError(
        'victim_unreachable',
        `gave up on ${who} at ${url} after ${n} attempt(s) over ${(elapsedMs / 1000).toFixed(1)} s ` +
          `(retry window ${windowMs / 1000} s, max ${maxAttempts} attempts); last error: ${a.reason}`,
        503,
        undefined,
        n,
      );
    }
    policy.onRetry?.({ url, attempt: n, delayMs, elapsedMs, reason: a.reason });
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}
