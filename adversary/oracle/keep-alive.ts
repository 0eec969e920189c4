/**
 * The one HTTP connection pool every paid request goes through (the victim's client, every target's):
 * keep-alive sockets, every status answered as a response for the caller to judge, bodies sent as
 * exactly their bytes, and a network failure read as an attempt — retried if transient, else final.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { isAxiosError, type AxiosInstance, type AxiosResponse } from 'axios';
import { TRANSIENT_NET, type Attempt } from './retry.js';

/** Below the usual keep-alive timeout (5 s), so a reused socket is one the server still holds. */
const IDLE_RECONNECT_MS = 3_000;

export interface KeepAliveRequest {
  method: string;
  /** A path under the base URL, or a whole URL without one. */
  url: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export class KeepAliveHttp {
  private readonly client: AxiosInstance;
  private readonly agents = [new http.Agent({ keepAlive: true }), new https.Agent({ keepAlive: true })];
  private lastActivity = 0;

  constructor(opts: { baseURL?: string; timeoutMs?: number }) {
    this.client = axios.create({
      baseURL: opts.baseURL,
      timeout: opts.timeoutMs ?? 30_000,
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      // Every status comes back as a response; the caller decides what is final.
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
    });
  }

  /**
   * The server's response, or the network failure as an attempt (`unreachable` words a final one).
   * Substitute training blocks the event loop for seconds, so the server's close of an idle keep-alive
   * socket goes unnoticed and the next request would write into a dead socket: after a long pause,
   * start from fresh connections instead of paying a reset and a retry.
   */
  async request(req: KeepAliveRequest, unreachable: (message: string) => string): Promise<{ res: AxiosResponse<string> } | { failed: Attempt<never> }> {
    if (Date.now() - this.lastActivity > IDLE_RECONNECT_MS) for (const a of this.agents) a.destroy();
    // axios would send a Uint8Array's whole underlying buffer; a Buffer view sends exactly its bytes.
    const data = req.body === undefined || typeof req.body === 'string' ? req.body : Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength);
    try {
      const res = await this.client.request<string>({ method: req.method, url: req.url, headers: req.headers, data });
      this.lastActivity = Date.now();
      return { res };
    } catch (e) {
      const code = isAxiosError(e) ? (e.code ?? '') : '';
      const msg = e instanceof Error ? e.message : String(e);
      if (TRANSIENT_NET.has(code)) return { failed: { kind: 'retry', reason: `${code} (${msg})` } };
      return { failed: { kind: 'final', code: 'victim_unreachable', message: unreachable(msg), status: 503 } };
    }
  }

  close(): void {
    for (const a of this.agents) a.destroy();
  }
}
