import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { TransferlabError } from '../../shared/errors.js';
import { answerClientErrorsInOrder } from './client-errors.js';
import { SERVER_TIMEOUTS, type ServerTimeouts } from './timeouts.js';

/**
 * Listening and graceful shutdown, kept apart from the app so tests can drive the app in-process.
 * Shutdown: stop accepting, let requests in flight finish (their responses close the connection),
 * then resolve; after `graceMs` any connection still open is cut.
 */
export interface RunningServer {
  url: string;
  server: Server;
  /** Stop accepting and wait for requests in flight. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Request handlers still running. A handler can outlive its connection (the client hung up while
 * its batch was labelled) and still has to write its audit line, so shutdown waits for these too
 * before the logs are closed.
 */
export class WorkInFlight {
  private running = 0;
  private waiters: (() => void)[] = [];

  track<T>(work: Promise<T>): Promise<T> {
    this.running++;
    return work.finally(() => {
      if (--this.running === 0) for (const w of this.waiters.splice(0)) w();
    });
  }

  idle(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

export async function startServer(app: Express, host: string, port: number, timeouts: ServerTimeouts = SERVER_TIMEOUTS): Promise<RunningServer> {
  const server = createServer(
    {
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      keepAliveTimeout: timeouts.keepAliveMs,
      // Node checks the headers and request timeouts only this often (30 s by default, which made a
      // 10 s headers timeout anything up to 40 s): a tenth of the shorter one, between 50 ms and 1 s.
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.min(timeouts.headersMs, timeouts.requestMs) / 10)),
    },
    app,
  );
  answerClientErrorsInOrder(server, timeouts);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'EADDRINUSE'
          ? `port ${port} on ${host} is already in use; pick another with --port (0 = any free port)`
          : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
            ? `cannot listen on host ${host}; use an address of this machine, e.g. 127.0.0.1`
            : `cannot listen on ${host}:${port}: ${e.message}`;
      reject(new TransferlabError('listen_failed', why, 500));
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    server,
    close(graceMs = 10_000) {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        // Keep-alive connections with no request in flight would otherwise hold close() open.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
