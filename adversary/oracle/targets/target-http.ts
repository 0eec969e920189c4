/**
 * HTTP for targets that are not a transferlab victim (TorchServe, a custom JSON API): one request,
 * its JSON answer, with the oracle's retry rule — network errors, 5xx and 429 retried with full-jitter
 * exponential backoff inside a time window, honouring Retry-After — and a final error that names the
 * target, the URL and what was wrong (401/403 with the header it tried, 404, a non-JSON answer).
 */
import http from 'node:http';
import https from 'node:https';
import axios, { isAxiosError, type AxiosInstance } from 'axios';
import { TransferlabError } from '../../../shared/errors.js';
import { VictimError } from '../core.js';
import type { RetryInfo, RetryOptions } from '../client.js';

export interface TargetRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export interface TargetHttpOptions {
  /** The target's kind, named in every error (torchserve, http, …). */
  target: string;
  retries?: RetryOptions;
  onRetry?: (info: RetryInfo) => void;
  random?: () => number;
  timeoutMs?: number;
}

const TRANSIENT_NET = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ERR_SOCKET_CONNECTION_TIMEOUT']);

function retryAfterMs(header: unknown): number | undefined {
  if (typeof header !== 'string' || header.trim() === '') return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const when = Date.parse(header);
  return Number.isNaN(when) ? undefined : Math.max(0, when - Date.now());
}

const snippet = (text: string) => {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 197)}...` : t;
};

/** Which credential headers a request carried, by name only: an error must say what was tried, never the secret. */
function credentialHeaders(headers: Record<string, string> = {}): string[] {
  return Object.keys(headers).filter((h) => /^(authorization|x-api-key|api-key|x-auth-token|cookie)$/i.test(h) || /token|key|secret/i.test(h));
}

type Attempt = { kind: 'ok'; status: number; json: unknown } | { kind: 'retry'; reason: string; retryAfterMs?: number } | { kind: 'final'; error: VictimError };

export class TargetHttp {
  private readonly client: AxiosInstance;
  private readonly agents = [new http.Agent({ keepAlive: true }), new https.Agent({ keepAlive: true })];

  constructor(private readonly opts: TargetHttpOptions) {
    this.client = axios.create({
      timeout: opts.timeoutMs ?? 30_000,
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
    });
  }

  private final(code: string, message: string, status: number, http?: number): Attempt {
    return { kind: 'final', error: new VictimError(code, message, status, http, 1) };
  }

  private async attempt(req: TargetRequest): Promise<Attempt> {
    const where = `${req.method} ${req.url}`;
    const name = `${this.opts.target} target`;
    let res;
    try {
      const data = req.body === undefined || typeof req.body === 'string' ? req.body : Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength);
      res = await this.client.request<string>({ method: req.method, url: req.url, headers: req.headers, data });
    } catch (e) {
      const code = isAxiosError(e) ? (e.code ?? '') : '';
      const msg = e instanceof Error ? e.message : String(e);
      if (TRANSIENT_NET.has(code)) return { kind: 'retry', reason: `${code} (${msg})` };
      return this.final('victim_unreachable', `cannot reach the ${name}: ${where} failed: ${msg}`, 503);
    }
    const text = String(res.data ?? '');
    const status = res.status;
    if (status >= 500 || status === 429) {
      const ra = res.headers['retry-after'] as unknown;
      return { kind: 'retry', reason: `HTTP ${status} from ${where}: ${snippet(text)}`, retryAfterMs: retryAfterMs(ra) };
    }
    if (status === 401 || status === 403) {
      const sent = credentialHeaders(req.headers);
      const tried = sent.length ? `it sent the header(s) ${sent.join(', ')}: check the token or key they carry` : 'it sent no Authorization header: give the token (--token, or the target file\'s headers)';
      return this.final('victim_unauthorized', `the ${name} refused ${where} (HTTP ${status}); ${tried}. The server said: ${snippet(text) || '(nothing)'}`, status, status);
    }
    if (status === 404) {
      return this.final('victim_not_found', `the ${name} has no ${where} (HTTP 404): check the URL and the model name (and version). The server said: ${snippet(text) || '(nothing)'}`, 404, 404);
    }
    if (status < 200 || status >= 300) {
      return this.final('victim_refused', `the ${name} refused ${where} (HTTP ${status}): ${snippet(text) || '(no body)'}`, status, status);
    }
    try {
      return { kind: 'ok', status, json: JSON.parse(text) as unknown };
    } catch {
      return this.final('victim_bad_response', `the ${name} answered ${where} with something that is not JSON (HTTP ${status}): ${snippet(text) || '(empty body)'}`, 502, status);
    }
  }

  /** One request to its JSON answer, transient failures retried (the same bytes each time). */
  async json(req: TargetRequest): Promise<{ status: number; json: unknown; attempts: number }> {
    const r = this.opts.retries ?? {};
    const maxAttempts = r.maxAttempts ?? 20;
    const base = r.baseDelayMs ?? 200;
    const ceilingMs = r.maxDelayMs ?? 5000;
    const windowMs = r.windowMs ?? 30_000;
    const random = this.opts.random ?? Math.random;
    const start = Date.now();
    for (let attempt = 1; ; attempt++) {
      const a = await this.attempt(req);
      if (a.kind === 'ok') return { status: a.status, json: a.json, attempts: attempt };
      if (a.kind === 'final') throw new VictimError(a.error.code, a.error.message, a.error.status, a.error.http, attempt);
      const jittered = random() * Math.min(ceilingMs, base * 2 ** (attempt - 1));
      const delayMs = Math.round(a.retryAfterMs === undefined ? jittered : Math.max(a.retryAfterMs, jittered));
      const elapsedMs = Date.now() - start;
      if (attempt >= maxAttempts || elapsedMs + delayMs > windowMs) {
        throw new VictimError(
          'victim_unreachable',
          `gave up on the ${this.opts.target} target at ${req.url} after ${attempt} attempt(s) over ${(elapsedMs / 1000).toFixed(1)} s; last error: ${a.reason}`,
          503, undefined, attempt,
        );
      }
      this.opts.onRetry?.({ url: req.url, attempt, delayMs, elapsedMs, reason: a.reason });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  close(): void {
    for (const a of this.agents) a.destroy();
  }
}

/** A target's base URL checked and without its trailing slash. */
export function targetBaseUrl(raw: string, target: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TransferlabError('bad_victim_url', `the ${target} target's URL "${raw}" is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TransferlabError('bad_victim_url', `the ${target} target's URL must be http or https, got ${u.protocol}`);
  return u.href.replace(/\/+$/, '');
}
