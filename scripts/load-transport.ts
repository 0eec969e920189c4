/**
 * The load tests' transport for the contract's client (shared/protocol/wire.ts): node:http over one
 * keep-alive Agent, so a measure counts the victim's work rather than connection set-up, and no
 * retries, so every figure is what one request cost. Paths, headers and answer parsing are the
 * contract's; this only moves bytes.
 */
import { Agent, request } from 'node:http';
import type { Transport } from '../shared/protocol/index.js';

export interface AgentTransportOptions {
  /**
   * Send again, once, on a fresh socket when a kept-alive socket the victim closed just as it was
   * reused resets (its keep-alive timeout; Node's documented remedy). Only safe for requests
   * with an Idempotency-Key.
   */
  resendOnStaleSocket?: boolean;
}

export function agentTransport(agent: Agent, opts: AgentTransportOptions = {}): Transport {
  const urls = new Map<string, URL>();
  return (base, req) => {
    let url = urls.get(base);
    if (!url) urls.set(base, (url = new URL(base)));
    const { hostname, port } = url;
    const body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
    const headers = body ? { ...req.headers, 'Content-Length': String(body.length) } : req.headers;
    const send = (resent: boolean): ReturnType<Transport> =>
      new Promise((resolve, reject) => {
        const r = request({ agent, host: hostname, port, path: req.path, method: req.method, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const header = (name: string) => {
              const v = res.headers[name.toLowerCase()];
              return Array.isArray(v) ? v.join(', ') : v;
            };
            resolve({ status: res.statusCode ?? 0, header, text: Buffer.concat(chunks).toString() });
          });
        });
        r.on('error', (e: NodeJS.ErrnoException) => {
          if (opts.resendOnStaleSocket && !resent && r.reusedSocket && e.code === 'ECONNRESET') send(true).then(resolve, reject);
          else reject(e);
        });
        r.end(body);
      });
    return send(false);
  };
}
