/**
 * The HTTP side of the JSON targets (oip, tfserving, …): one request with the retries every paid
 * request gets (oracle/retry.ts: network errors, 5xx and 429 waited out, Retry-After honoured), and
 * a final refusal turned into words naming the target, the URL, the request and what was wrong —
 * a 401/403 with the Authorization header it tried, a non-JSON answer with its first characters.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { isAxiosError, type AxiosInstance } from 'axios';
import { HEADERS } from '../../shared/protocol/index.js';
import { retryAfterMs, TRANSIENT_NET, withRetries, type Attempt } from '../oracle/retry.js';
import type { TargetContext } from './target.js';

/** Below the usual keep-alive timeout (5 s), so a reused socket is one the server still holds (as in oracle/client.ts). */
const IDLE_RECONNECT_MS = 3_000;
const excerpt = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}…` : text).replace(/\s+/g, ' ').trim();

/** The server's own words from an error body: `{"error": "…"}` (OIP, TF Serving), else the text. */
function serverWords(text: string): string {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && 'error' in v) {
      const e = (v as { error: unknown }).error;
      if (typeof e === 'string') return e;
      if (e && typeof e === 'object' && 'message' in e && typeof e.message === 'string') return e.message;
    }
  } catch {
    // not JSON: the text itself
  }
  return excerpt(text) || '(empty body)';
}

export interface JsonAnswer {
  value: unknown;
  status: number;
  attempts: number;
}

export class JsonHttp {
  private readonly client: AxiosInstance;
  private readonly agents = [new http.Agent({ keepAlive: true }), new https.Agent({ keepAlive: true })];
  private lastActivity = 0;

  /**
   * `kind` names the target in messages; `auth` is the Authorization header's value (or none) and
   * `authSource` where it came from, said when the server refuses it.
   */
  constructor(readonly kind: string, private readonly ctx: TargetContext, private readonly auth?: { header: string; source: string }) {
    this.client = axios.create({
      baseURL: ctx.url,
      timeout: ctx.timeoutMs ?? 30_000,
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
    });
  }

  get url(): string {
    return this.ctx.url;
  }

  private async attempt(method: 'GET' | 'POST', path: string, body: string | undefined, headers: Record<string, string>): Promise<Attempt<unknown>> {
    const where = `${method} ${this.ctx.url}${path}`;
    const who = `${this.kind} target at ${this.ctx.url}`;
    // A long pause (substitute training blocks the event loop) may leave dead keep-alive sockets: start afresh.
    if (Date.now() - this.lastActivity > IDLE_RECONNECT_MS) for (const a of this.agents) a.destroy();
    let res;
    try {
      res = await this.client.request<string>({ method, url: path, data: body, headers });
      this.lastActivity = Date.now();
    } catch (e) {
      const code = isAxiosError(e) ? (e.code ?? '') : '';
      const msg = e instanceof Error ? e.message : String(e);
      if (TRANSIENT_NET.has(code)) return { kind: 'retry', reason: `${code} (${msg})` };
      return { kind: 'final', code: 'victim_unreachable', message: `cannot reach the ${who}: ${where} failed: ${msg}`, status: 503 };
    }
    const text = String(res.data);
    const status = res.status;
    if (status >= 200 && status < 300) {
      try {
        return { kind: 'ok', status, value: JSON.parse(text) as unknown };
      } catch {
        return { kind: 'final', code: 'target_bad_response', message: `the ${who} answered ${where} (HTTP ${status}) with something that is not JSON: ${excerpt(text) || '(empty body)'}`, status: 502, http: status };
      }
    }
    if (status >= 500 || status === 429) {
      const header: unknown = res.headers['retry-after'];
      return { kind: 'retry', reason: `HTTP ${status}: ${serverWords(text)}`, retryAfterMs: retryAfterMs(header) };
    }
    // A transferlab victim serving this protocol refuses a batch its detector flagged (action reject)
    // with 403 and X-Rejected-Images: a refusal of these images, not of the credentials.
    const flagged: unknown = res.headers[HEADERS.rejectedImages.toLowerCase()];
    if (status === 403 && typeof flagged === 'string') {
      const rejected = flagged.split(',').filter((v) => /^\d+$/.test(v)).map(Number);
      return { kind: 'final', code: 'query_rejected', message: `the ${who} refused ${where} (HTTP 403 query_rejected): ${serverWords(text)}`, status, http: status, rejected };
    }
    if (status === 401 || status === 403) {
      const tried = this.auth ? `it was sent Authorization: ${this.auth.header.split(' ')[0]} … (from ${this.auth.source})` : 'no Authorization header was sent (give --api-key, or --token for torchserve)';
      return { kind: 'final', code: 'target_unauthorized', message: `the ${who} refused ${where} (HTTP ${status}): ${serverWords(text)}; ${tried}`, status, http: status };
    }
    return { kind: 'final', code: status === 404 ? 'target_not_found' : 'target_refused', message: `the ${who} refused ${where} (HTTP ${status}): ${serverWords(text)}`, status, http: status };
  }

  /** One request, retried while the trouble is transient; JSON in (when given), JSON out. */
  call(method: 'GET' | 'POST', path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<JsonAnswer> {
    const headers: Record<string, string> = { Accept: 'application/json', ...extraHeaders };
    if (this.auth) headers.Authorization = this.auth.header;
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) headers['Content-Type'] = 'application/json';
    return withRetries(() => this.attempt(method, path, text, headers), this.ctx.url, `the ${this.kind} target`, this.ctx);
  }

  close(): void {
    for (const a of this.agents) a.destroy();
  }
}

/** The Authorization header of a Bearer credential, with where it came from, or none. */
export function bearer(value: string | undefined, source: string): { header: string; source: string } | undefined {
  return value ? { header: `Bearer ${value}`, source } : undefined;
}
