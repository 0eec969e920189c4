/**
 * The JSON protocol targets' HTTP (oip, tfserving): paths under the target's base URL, JSON in and out,
 * the caller's key as a Bearer credential; every request, its retries and its refusals in words are
 * target-http.ts's, as for every other target.
 */
import type { TargetContext } from './target.js';
import { TargetHttp } from './target-http.js';

export interface JsonAnswer {
  value: unknown;
  status: number;
  attempts: number;
}

export class JsonHttp {
  private readonly http: TargetHttp;

  /** `kind` names the target in messages; `auth` is the Authorization header's value (or none) and where it came from. */
  constructor(readonly kind: string, private readonly ctx: TargetContext, private readonly auth?: { header: string; source: string }) {
    this.http = new TargetHttp(kind, ctx, auth?.source ?? '--api-key');
  }

  get url(): string {
    return this.ctx.url;
  }

  /** One request, retried while the trouble is transient; JSON in (when given), JSON out. */
  call(method: 'GET' | 'POST', path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<JsonAnswer> {
    const headers: Record<string, string> = { Accept: 'application/json', ...extraHeaders };
    if (this.auth) headers.Authorization = this.auth.header;
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) headers['Content-Type'] = 'application/json';
    return this.http.json({ method, url: `${this.ctx.url}${path}`, headers, body: text });
  }

  close(): void {
    this.http.close();
  }
}

/** The Authorization header of a Bearer credential, with where it came from, or none. */
export function bearer(value: string | undefined, source: string): { header: string; source: string } | undefined {
  return value ? { header: `Bearer ${value}`, source } : undefined;
}
