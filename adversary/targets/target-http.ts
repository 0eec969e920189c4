/**
 * HTTP for the targets whose requests are not JSON to a base URL (TorchServe's PNG bodies, a custom
 * API's full URL, method and headers): one request, its JSON answer, retried by the rule every paid
 * request follows (oracle/retry.ts), and a final refusal naming the target, the URL and what was
 * wrong — a 401/403 with the credential headers it sent (by name, never their value), a 404, a
 * non-JSON answer, a batch a transferlab victim's detector refused (403 with X-Rejected-Images). The
 * JSON protocol targets (oip, tfserving) reach it through json-http.ts.
 */
import { TransferlabError } from '../../shared/errors.js';
import { HEADERS } from '../../shared/protocol/index.js';
import { KeepAliveHttp } from '../oracle/keep-alive.js';
import { retryAfterMs, withRetries, type Attempt, type RetryPolicy } from '../oracle/retry.js';

export interface TargetRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

const snippet = (text: string) => {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 197)}...` : t;
};

/** The server's own words from an error body: `{"error": "…"}` (OIP, TF Serving) or `{"error": {"message"}}`, else the text. */
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
  return snippet(text);
}

/** The credential headers a request carried, by name only: an error says what was tried, never the secret. */
function credentialHeaders(headers: Record<string, string> = {}): string[] {
  // An Idempotency-Key names a request, not a credential.
  return Object.keys(headers).filter((h) => !/^idempotency-key$/i.test(h) && (/^(authorization|cookie)$/i.test(h) || /token|key|secret|auth/i.test(h)));
}

export class TargetHttp {
  private readonly http: KeepAliveHttp;

  /** `kind` names the target in messages; `credentialHint` says where a refused credential came from (a flag, the target file). */
  constructor(readonly kind: string, private readonly policy: RetryPolicy & { timeoutMs?: number }, private readonly credentialHint: string) {
    this.http = new KeepAliveHttp({ timeoutMs: policy.timeoutMs });
  }

  private async attempt(req: TargetRequest): Promise<Attempt<unknown>> {
    const where = `${req.method} ${req.url}`;
    const who = `${this.kind} target`;
    const sent = await this.http.request(req, (msg) => `cannot reach the ${who}: ${where} failed: ${msg}`);
    if ('failed' in sent) return sent.failed;
    const { res } = sent;
    const text = String(res.data ?? '');
    const status = res.status;
    if (status >= 200 && status < 300) {
      try {
        return { kind: 'ok', status, value: JSON.parse(text) as unknown };
      } catch {
        return { kind: 'final', code: 'target_bad_response', message: `the ${who} answered ${where} (HTTP ${status}) with something that is not JSON: ${snippet(text) || '(empty body)'}`, status: 502, http: status };
      }
    }
    if (status >= 500 || status === 429) {
      const header: unknown = res.headers['retry-after'];
      return { kind: 'retry', reason: `HTTP ${status} from ${where}: ${serverWords(text)}`, retryAfterMs: retryAfterMs(header) };
    }
    const said = serverWords(text) || '(nothing)';
    // A transferlab victim serving this protocol refuses a batch its detector flagged (action reject)
    // with 403 and X-Rejected-Images: a refusal of these images, not of the credentials.
    const flagged: unknown = res.headers[HEADERS.rejectedImages.toLowerCase()];
    if (status === 403 && typeof flagged === 'string') {
      const rejected = flagged.split(',').filter((v) => /^\d+$/.test(v)).map(Number);
      return { kind: 'final', code: 'query_rejected', message: `the ${who} refused ${where} (HTTP 403 query_rejected): ${said}`, status, http: status, rejected };
    }
    if (status === 401 || status === 403) {
      const sent = credentialHeaders(req.headers);
      const tried = sent.length ? `it sent the header ${sent.join(', ')} (from ${this.credentialHint}): check the credential it carries` : `it sent no Authorization header: give one (${this.credentialHint})`;
      return { kind: 'final', code: 'target_unauthorized', message: `the ${who} refused ${where} (HTTP ${status}); ${tried}. The server said: ${said}`, status, http: status };
    }
    if (status === 404) {
      return { kind: 'final', code: 'target_not_found', message: `the ${who} has no ${where} (HTTP 404): check the URL and the model's name and version. The server said: ${said}`, status, http: status };
    }
    return { kind: 'final', code: 'target_refused', message: `the ${who} refused ${where} (HTTP ${status}): ${said}`, status, http: status };
  }

  /** One request to its JSON answer, transient failures retried with the same bytes. */
  json(req: TargetRequest): Promise<{ status: number; value: unknown; attempts: number }> {
    return withRetries(() => this.attempt(req), req.url, `the ${this.kind} target`, this.policy);
  }

  close(): void {
    this.http.close();
  }
}

/** An http(s) URL without its trailing slash; anything else refused in words naming the target. */
export function targetUrl(raw: string, kind: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TransferlabError('bad_victim_url', `the ${kind} target's URL "${raw}" is not a URL (e.g. http://127.0.0.1:8080/v1/classify)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TransferlabError('bad_victim_url', `the ${kind} target's URL must be http or https, got ${u.protocol}`);
  return u.href.replace(/\/+$/, '');
}
