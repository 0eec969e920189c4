/**
 * The adversary's HTTP client for the victim API (documented in docs/http-api.md; the contract itself is shared/protocol/).
 * Transient trouble (network errors, 5xx, 429 rate limits) is retried with exponential backoff
 * and full jitter inside a time window, so a victim restart does not end a campaign; a refusal
 * (budget exhausted, bad key, bad request) is final and surfaces the victim's code and message.
 * Counting, caching and the ledger are in oracle-core.ts / answer-cache.ts.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { isAxiosError, type AxiosInstance, type AxiosRequestConfig } from 'axios';
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { runIdentity } from './answer-cache.js';
import { HEADERS, MEDIA_TYPES, PATHS, anyErrorBodySchema, budgetSchema, victimInfoSchema, type BudgetStatus } from '../../shared/protocol/index.js';
import type { VictimInfo } from './oracle.js';
import { buildOracle, imageKey, oracleStore, VictimError, type CountingOracle, type PixelFormat, type SendBatch } from './core.js';
import { runStore, type RunStore } from '../run/store.js';
import { victimUrlProblem } from './victim-url.js';

export { oracleFromLabeler, VictimError, type CountingOracle, type PixelFormat } from './core.js';
export { ANSWER_CACHE_FILE, QUERY_LEDGER_FILE } from './answer-cache.js';

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

export interface HttpOracleOptions {
  /** Victim base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  apiKey?: string;
  /** Wire format: 'uint8' (default; what a real attacker can send) or 'float32'. */
  format?: PixelFormat;
  /** Run folder: answers.jsonl and queries.jsonl live here. Without it (or a store) the cache is in memory only. */
  cacheDir?: string;
  /** The run's store, instead of a folder: the cache and ledger are kept through it. */
  store?: RunStore;
  retries?: RetryOptions;
  onRetry?: (info: RetryInfo) => void;
  /** Source of jitter in [0,1) (default Math.random); inject a seeded one for repeatable waits. */
  random?: () => number;
  /** Per-request timeout (default 30000 ms); a timeout is retried like a network error. */
  timeoutMs?: number;
}

/**
 * Labels are checked against the victim's class count by the oracle core (with a clearer message
 * than a schema's), and the budget may be absent from an older or foreign label service.
 */
const labelSchema = z.object({
  labels: z.array(z.number()),
  budget: budgetSchema.optional(),
});

/** Errors worth waiting out: the victim restarting, a dropped socket, a slow answer. */
const TRANSIENT_NET = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'EPIPE', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

type Attempt =
  | { kind: 'ok'; status: number; body: unknown }
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  | { kind: 'final'; code: string; message: string; status: number; http?: number };

function parseJson(text: unknown): unknown {
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Retry-After is delta-seconds or an HTTP date. */
function retryAfterMs(header: unknown): number | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const when = Date.parse(header);
  return Number.isNaN(when) ? undefined : Math.max(0, when - Date.now());
}

function normaliseUrl(raw: string): string {
  const problem = victimUrlProblem(raw);
  if (problem) throw new TransferlabError('bad_victim_url', problem);
  return new URL(raw).href.replace(/\/+$/, '');
}

/** Below the victim's keep-alive timeout (5 s), so a reused socket is one the victim still holds. */
const IDLE_RECONNECT_MS = 3_000;

export class VictimHttp {
  private readonly client: AxiosInstance;
  private readonly agents = [new http.Agent({ keepAlive: true }), new https.Agent({ keepAlive: true })];
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly windowMs: number;
  private readonly random: () => number;
  private lastActivity = 0;

  constructor(readonly url: string, private readonly opts: HttpOracleOptions) {
    const r = opts.retries ?? {};
    this.maxAttempts = r.maxAttempts ?? 20;
    this.baseDelayMs = r.baseDelayMs ?? 200;
    this.maxDelayMs = r.maxDelayMs ?? 5000;
    this.windowMs = r.windowMs ?? 30_000;
    this.random = opts.random ?? Math.random;
    this.client = axios.create({
      baseURL: url,
      timeout: opts.timeoutMs ?? 30_000,
      headers: opts.apiKey ? { [HEADERS.authorization]: `Bearer ${opts.apiKey}` } : {},
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      // Every status comes back as a response; classify() decides what is final.
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
    });
  }

  /** One attempt: a usable answer, something to retry, or a final refusal. */
  private async attempt(config: AxiosRequestConfig): Promise<Attempt> {
    const where = `${config.method?.toUpperCase() ?? 'GET'} ${this.url}${config.url ?? ''}`;
    let res;
    // Substitute training blocks the event loop for seconds, so the victim's close of an idle
    // keep-alive socket goes unnoticed and the next request would write into a dead socket:
    // after a long pause, start from fresh connections instead of paying a reset and a retry.
    if (Date.now() - this.lastActivity > IDLE_RECONNECT_MS) for (const a of this.agents) a.destroy();
    try {
      res = await this.client.request<string>(config);
      this.lastActivity = Date.now();
    } catch (e) {
      const code = isAxiosError(e) ? (e.code ?? '') : '';
      const msg = e instanceof Error ? e.message : String(e);
      if (TRANSIENT_NET.has(code)) return { kind: 'retry', reason: `${code} (${msg})` };
      return { kind: 'final', code: 'victim_unreachable', message: `cannot reach the victim at ${this.url}: ${where} failed: ${msg}`, status: 503 };
    }
    const body = parseJson(res.data);
    if (res.status >= 200 && res.status < 300) return { kind: 'ok', status: res.status, body };
    const env = anyErrorBodySchema.safeParse(body);
    const code = env.success ? env.data.error.code : `victim_http_${res.status}`;
    const message = env.success ? env.data.error.message : String(res.data).slice(0, 200);
    if (res.status >= 500 || (res.status === 429 && code !== 'budget_exhausted')) {
      return { kind: 'retry', reason: `HTTP ${res.status} ${code}: ${message}`, retryAfterMs: retryAfterMs(res.headers[HEADERS.retryAfter.toLowerCase()]) };
    }
    // Final: the campaign stops with the victim's own code and words.
    return { kind: 'final', code, message: `victim at ${this.url} refused ${where} (HTTP ${res.status} ${code}): ${message}`, status: res.status, http: res.status };
  }

  /** Retries transient failures with full-jitter exponential backoff until the window closes. */
  async request(config: AxiosRequestConfig): Promise<{ status: number; body: unknown; attempts: number }> {
    const start = Date.now();
    for (let attempt = 1; ; attempt++) {
      const a = await this.attempt(config);
      if (a.kind === 'ok') return { status: a.status, body: a.body, attempts: attempt };
      if (a.kind === 'final') throw new VictimError(a.code, a.message, a.status, a.http, attempt);
      const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
      const jittered = this.random() * ceiling;
      const delayMs = Math.round(a.retryAfterMs === undefined ? jittered : Math.max(a.retryAfterMs, jittered));
      const elapsedMs = Date.now() - start;
      if (attempt >= this.maxAttempts || elapsedMs + delayMs > this.windowMs) {
        throw new VictimError(
          'victim_unreachable',
          `gave up on the victim at ${this.url} after ${attempt} attempt(s) over ${(elapsedMs / 1000).toFixed(1)} s ` +
            `(retry window ${this.windowMs / 1000} s, max ${this.maxAttempts} attempts); last error: ${a.reason}`,
          503,
          undefined,
          attempt,
        );
      }
      this.opts.onRetry?.({ url: this.url, attempt, delayMs, elapsedMs, reason: a.reason });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  async info(): Promise<VictimInfo> {
    let res;
    try {
      res = await this.request({ method: 'GET', url: PATHS.info });
    } catch (e) {
      if (e instanceof TransferlabError && e.status === 404) {
        throw new TransferlabError('bad_victim_url', `${this.url}${PATHS.info} does not exist (HTTP 404): is ${this.url} a transferlab victim (API v1)?`, 404);
      }
      throw e;
    }
    const parsed = victimInfoSchema.safeParse(res.body);
    if (!parsed.success) {
      throw new TransferlabError(
        'victim_info_invalid',
        `${this.url}${PATHS.info} did not answer a victim description (API v1): ${z.prettifyError(parsed.error)}`,
        502,
      );
    }
    return parsed.data;
  }

  /** The key's budget from GET /v1/budget (free); null when the victim lacks the route (an older or foreign service). */
  async budget(): Promise<BudgetStatus | null> {
    let res;
    try {
      res = await this.request({ method: 'GET', url: PATHS.budget });
    } catch (e) {
      if (e instanceof VictimError && (e.http === 404 || e.http === 405)) return null;
      throw e;
    }
    const parsed = budgetSchema.safeParse(res.body);
    if (!parsed.success) {
      throw new TransferlabError('victim_bad_response', `${this.url}${PATHS.budget} answered no {used,limit}: ${z.prettifyError(parsed.error)}`, 502);
    }
    return parsed.data;
  }

  readonly send = (format: PixelFormat, scope: string): SendBatch => async (body) => {
    const data = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const res = await this.request({
      method: 'POST',
      url: PATHS.label,
      data,
      headers: {
        'Content-Type': MEDIA_TYPES.binary,
        ...(format === 'float32' ? { [HEADERS.pixelFormat]: 'float32' } : {}),
        // Same run and bytes, same key, on every retry and after a resume: lets a victim that honours
        // it avoid charging twice for a batch whose answer was lost in transit (ignored otherwise).
        [HEADERS.idempotencyKey]: `${scope}.${imageKey(body, format)}`,
      },
    });
    const parsed = labelSchema.safeParse(res.body);
    if (!parsed.success) {
      throw new TransferlabError('victim_bad_response', `${this.url}${PATHS.label} answered no {labels,budget}: ${z.prettifyError(parsed.error)}`, 502);
    }
    return { labels: parsed.data.labels, budget: parsed.data.budget, http: res.status, attempts: res.attempts };
  };

  close(): void {
    for (const a of this.agents) a.destroy();
  }
}

/** The oracle of a command-line run: its answers cached in the run's store, retries reported on stderr. */
export function createRunOracle(run: { victim: string; apiKey?: string; format?: PixelFormat }, out: RunStore | string): Promise<CountingOracle> {
  return createHttpOracle({
    url: run.victim,
    apiKey: run.apiKey,
    format: run.format,
    store: runStore(out),
    onRetry: (i) => console.error(`victim: ${i.reason}; retry ${i.attempt} in ${Math.round(i.delayMs)} ms`),
  });
}

/**
 * Connect to a victim: reads /v1/info once (retrying while the victim comes up), loads the run's
 * answer cache, and returns an oracle that pays only for images never answered before.
 */
export async function createHttpOracle(opts: HttpOracleOptions): Promise<CountingOracle> {
  const url = normaliseUrl(opts.url);
  const victim = new VictimHttp(url, opts);
  let info: VictimInfo;
  try {
    info = await victim.info();
  } catch (e) {
    victim.close();
    throw e;
  }
  const format = opts.format ?? 'uint8';
  const store = oracleStore(opts);
  let scope: string;
  try {
    scope = runIdentity(store);
  } catch (e) {
    victim.close();
    throw e;
  }
  return buildOracle({ info, format, send: victim.send(format, scope), store, readBudget: () => victim.budget(), onClose: () => victim.close() });
}
