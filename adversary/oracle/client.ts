/**
 * The adversary's HTTP client for the victim API (documented in docs/http-api.md). Each call is a route
 * of the contract's table: its request is built, and its answer read and validated, by
 * shared/protocol/wire.ts; this layer adds what a campaign needs on top. Transient trouble (network
 * errors, 5xx, 429 rate limits) is retried with exponential backoff and full jitter inside a time
 * window, so a victim restart does not end a campaign; a refusal (budget exhausted, bad key, bad
 * request) is final and surfaces the victim's code and message; every batch carries an
 * Idempotency-Key, the same on each retry. Counting, caching and the ledger are in core.ts / answer-cache.ts.
 */
import { readFileSync } from 'node:fs';
import { TransferlabError } from '../../shared/errors.js';
import { runIdentity } from './answer-cache.js';
import { HEADERS, ROUTES, readAnswer, wireRequest, type BudgetStatus, type CallInput, type RouteAnswer, type RouteName, type WireRequest } from '../../shared/protocol/index.js';
import type { VictimInfo } from './oracle.js';
import { buildOracle, oracleStore, VictimError, type CountingOracle, type PixelFormat, type SendBatch } from './core.js';
import { imageKey } from './image-bytes.js';
import type { RunStore } from '../run/store.js';
import { victimUrlProblem } from './victim-url.js';
import type { OracleLimits } from './limits.js';
import { KeepAliveHttp } from './keep-alive.js';
import { retryAfterMs, withRetries, type Attempt, type RetryInfo, type RetryOptions } from './retry.js';

export type { RetryInfo, RetryOptions };

export { VictimError, type CountingOracle, type PixelFormat } from './core.js';
export { oracleFromLabeler } from './local-oracle.js';
export { ANSWER_CACHE_FILE, QUERY_LEDGER_FILE } from './answer-cache.js';

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
  /** The client's budget of paid images and its pace (--budget, --concurrency, --rps). */
  limits?: OracleLimits;
  /**
   * Sybil: the attack's requests spread over these keys (instead of `apiKey`), each request sent with
   * the next key in turn (`round-robin`) or one drawn at random (`random`, from `random`).
   */
  apiKeys?: readonly string[];
  keyOrder?: KeyOrder;
  /** Most images per request (default and ceiling: the victim's maxBatch). */
  requestSize?: number;
  /** A 403 query_rejected answers the batch's images as REJECTED (counted as flagged) instead of stopping the run. */
  rejectAsAnswer?: boolean;
  /**
   * Sybil against a victim that blocks flagged keys: a key refused with 403 extraction_suspected is
   * dropped and the request goes to the next live key (a blocked request is not charged); only when
   * every key is blocked does the refusal reach the caller.
   */
  retireBlockedKeys?: boolean;
}

export const KEY_ORDERS = ['round-robin', 'random'] as const;
export type KeyOrder = (typeof KEY_ORDERS)[number];

type RouteAttempt<R extends RouteName> = Attempt<RouteAnswer<R>>;

/** The base URL without its trailing slashes; a URL that is not http(s) is refused in words. */
export function normaliseUrl(raw: string): string {
  const problem = victimUrlProblem(raw);
  if (problem) throw new TransferlabError('bad_victim_url', problem);
  return new URL(raw).href.replace(/\/+$/, '');
}

export class VictimHttp {
  private readonly http: KeepAliveHttp;
  private nextKey = 0;
  /** Sybil keys the victim has blocked (403 extraction_suspected), by index: never sent again. */
  private readonly blocked = new Set<number>();

  constructor(readonly url: string, private readonly opts: HttpOracleOptions) {
    // Sybil keys replace the one key: both given would send under one of them, the other ignored.
    if (opts.apiKey !== undefined && opts.apiKeys?.length) {
      throw new TransferlabError('invalid_config', 'apiKey and apiKeys are both given: give one API key, or the Sybil keys to spread the requests over, not both');
    }
    this.http = new KeepAliveHttp({ baseURL: url, timeoutMs: opts.timeoutMs });
  }

  /** One attempt: a usable answer (fitting the route's schema), something to retry, or a final refusal. */
  private async attempt<R extends RouteName>(name: R, req: WireRequest): Promise<RouteAttempt<R>> {
    const where = `${req.method} ${this.url}${req.path}`;
    const sent = await this.http.request({ method: req.method, url: req.path, headers: req.headers, body: req.body }, (msg) => `cannot reach the victim at ${this.url}: ${where} failed: ${msg}`);
    if ('failed' in sent) return sent.failed;
    const { res } = sent;
    const headers = res.headers;
    const answer = readAnswer(name, {
      status: res.status,
      header: (h) => {
        const v: unknown = headers[h.toLowerCase()];
        return typeof v === 'string' ? v : undefined;
      },
      text: String(res.data),
    }, this.url);
    if (answer.ok) return { kind: 'ok', status: answer.status, value: answer.value };
    const { status, code, message } = answer;
    if (status >= 500 || (status === 429 && code !== 'budget_exhausted')) {
      return { kind: 'retry', reason: `HTTP ${status} ${code}: ${message}`, retryAfterMs: retryAfterMs(answer.retryAfter) };
    }
    // Final: the campaign stops with the victim's own code and words (a rejected batch: with the images the detector flagged).
    const flagged = typeof headers[HEADERS.rejectedImages.toLowerCase()] === 'string' ? String(headers[HEADERS.rejectedImages.toLowerCase()]) : '';
    const rejected = code === 'query_rejected' ? flagged.split(',').filter((v) => /^\d+$/.test(v)).map(Number) : undefined;
    return { kind: 'final', code, message: `victim at ${this.url} refused ${where} (HTTP ${status} ${code}): ${message}`, status, http: status, rejected };
  }

  /**
   * Calls a route of the contract, retrying transient failures with full-jitter exponential backoff
   * until the window closes; the request is built once, so every retry sends the same bytes and key.
   */
  async call<R extends RouteName>(name: R, input: CallInput<R>): Promise<{ status: number; value: RouteAnswer<R>; attempts: number }> {
    const req = wireRequest(name, { ...input, apiKey: input.apiKey ?? this.opts.apiKey });
    return withRetries(() => this.attempt(name, req), this.url, 'the victim', this.opts);
  }

  async info(): Promise<VictimInfo> {
    try {
      return (await this.call('info', {})).value;
    } catch (e) {
      if (e instanceof TransferlabError && e.status === 404) {
        throw new TransferlabError('bad_victim_url', `${this.url}${ROUTES.info.path} does not exist (HTTP 404): is ${this.url} a transferlab victim (API v1)?`, 404);
      }
      throw e;
    }
  }

  /** The key's budget from GET /v1/budget (free); null when the victim lacks the route (an older or foreign service). */
  async budget(): Promise<BudgetStatus | null> {
    try {
      return (await this.call('budget', {})).value;
    } catch (e) {
      if (e instanceof VictimError && (e.http === 404 || e.http === 405)) return null;
      throw e;
    }
  }

  /** The key of the next request, and its index among the Sybil keys (0 with one key); blocked keys are skipped. */
  private pickKey(): { apiKey: string | undefined; key: number } {
    const keys = this.opts.apiKeys;
    if (!keys || keys.length === 0) return { apiKey: this.opts.apiKey, key: 0 };
    let key: number;
    if (this.opts.keyOrder === 'random') {
      const live = keys.flatMap((_, k) => (this.blocked.has(k) ? [] : [k]));
      key = live[Math.floor((this.opts.random ?? Math.random)() * live.length) % live.length];
    } else {
      do key = this.nextKey++ % keys.length;
      while (this.blocked.has(key));
    }
    return { apiKey: keys[key], key };
  }

  /** Keys blocked so far (retireBlockedKeys), of the Sybil keys. */
  blockedKeys(): number {
    return this.blocked.size;
  }

  /**
   * One request with the next key; with retireBlockedKeys, a key the victim blocks is dropped and the
   * same request goes to the next live key, until one answers or every key is blocked.
   */
  private async withKey<T>(request: (apiKey: string | undefined, key: number) => Promise<T>): Promise<T> {
    for (;;) {
      const { apiKey, key } = this.pickKey();
      try {
        return await request(apiKey, key);
      } catch (e) {
        const keys = this.opts.apiKeys?.length ?? 0;
        if (!(this.opts.retireBlockedKeys && keys > 1 && e instanceof VictimError && e.code === 'extraction_suspected')) throw e;
        this.blocked.add(key);
        if (this.blocked.size >= keys) {
          throw new VictimError(e.code, `${e.message} (all ${keys} Sybil keys are now blocked)`, e.status, e.http, e.attempts);
        }
      }
    }
  }

  readonly send = (format: PixelFormat, scope: string): SendBatch => (body) =>
    this.withKey(async (apiKey, key) => {
      const res = await this.call('label', {
        apiKey,
        images: { format, bytes: body },
        // Same run and bytes, same key, on every retry and after a resume: lets a victim that honours
        // it avoid charging twice for a batch whose answer was lost in transit (ignored otherwise).
        idempotencyKey: `${scope}.${imageKey(body, format)}`,
      });
      return { labels: res.value.labels, budget: res.value.budget, http: res.status, attempts: res.attempts, key };
    });

  /**
   * The same batch through /v1/predict: the labels and, as the victim's output policy allows, the top-k
   * or every class's probability, as count × classes scores (NaN for a class a top-k answer left out).
   * Its Idempotency-Key is apart from /v1/label's for the same bytes: a different request.
   */
  readonly sendPredict = (format: PixelFormat, scope: string, classes: number): SendBatch => (body, count) =>
    this.withKey(async (apiKey, key) => {
      const res = await this.call('predict', { apiKey, images: { format, bytes: body }, idempotencyKey: `${scope}.predict.${imageKey(body, format)}` });
      const a = res.value;
      const scores = new Float32Array(count * classes).fill(NaN);
      const rows = a.scores ?? [];
      rows.forEach((row, i) => row.forEach((p, c) => c < classes && (scores[i * classes + c] = p)));
      a.top?.forEach((row, i) => row.forEach(({ class: c, p }) => c < classes && (scores[i * classes + c] = p)));
      return { labels: a.labels, scores, budget: a.budget, http: res.status, attempts: res.attempts, key };
    });

  /** Every key's budget, summed (the one key's without Sybil keys). */
  async budgets(): Promise<BudgetStatus | null> {
    const keys = this.opts.apiKeys;
    if (!keys || keys.length === 0) return this.budget();
    let used = 0;
    let limit: number | null = 0;
    for (const apiKey of keys) {
      const b = await this.budgetOf(apiKey);
      if (!b) return null;
      used += b.used;
      limit = limit === null || b.limit === null ? null : limit + b.limit;
    }
    return { used, limit };
  }

  private async budgetOf(apiKey: string): Promise<BudgetStatus | null> {
    try {
      return (await this.call('budget', { apiKey })).value;
    } catch (e) {
      if (e instanceof VictimError && (e.http === 404 || e.http === 405)) return null;
      throw e;
    }
  }

  close(): void {
    this.http.close();
  }
}

/** Sybil keys from a file: one a line; blank lines and lines starting with # are skipped. */
export function readKeysFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TransferlabError('keys_file_unreadable', `cannot read the keys file ${path}: ${(e as Error).message}`);
  }
  const keys = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length === 0) throw new TransferlabError('keys_file_empty', `the keys file ${path} holds no key (one API key a line)`);
  return keys;
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
  return buildOracle({
    info,
    format,
    send: victim.send(format, scope),
    store,
    readBudget: () => victim.budgets(),
    onClose: () => victim.close(),
    limits: opts.limits,
    requestSize: opts.requestSize,
    rejectAsAnswer: opts.rejectAsAnswer,
    keys: opts.apiKeys?.length || 1,
  });
}
