import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { TransferlabError } from '../../shared/errors.js';
import type { ServerTimeouts } from './timeouts.js';

/**
 * Bytes on a connection that are not valid HTTP (or a request that took too long to arrive).
 *
 * Node's default answers with its own 400 and destroys the socket at once — even while an earlier
 * request on the same keep-alive connection, pipelined in the same packet, is still being labelled.
 * That request would then be charged and audited as answered while its client saw only the 400,
 * and read it as the answer to what it sent. Here the connection's complete requests still in
 * flight are answered first; then the error response (in the API's error format) and the close.
 *
 * A request whose own body is what broke (a bad chunk, a body cut short by the client's half-close,
 * a body too slow for the request timeout) is never waited for: its handler is still reading a body
 * that will never come, so waiting for it would hold the connection open with nobody answered. The
 * error is its answer; its handler learns so through `clientErrorOf` and audits that status.
 */
const answeredByServer = new WeakMap<IncomingMessage, TransferlabError>();

/** The error this module already sent in place of `req`'s response, if any (for the audit line). */
export function clientErrorOf(req: IncomingMessage): TransferlabError | undefined {
  return answeredByServer.get(req);
}

/** How long a connection may stay half-open after its error response, if the client never closes its side. */
const LINGER_MS = 1000;

export function answerClientErrorsInOrder(server: Server, timeouts: ServerTimeouts): void {
  const inFlight = new WeakMap<Duplex, Map<ServerResponse, IncomingMessage>>();
  const afterInFlight = new WeakMap<Duplex, () => void>();
  /** Complete requests whose responses have not finished: those come before the error response. */
  const waitingFor = (socket: Duplex) => [...(inFlight.get(socket)?.values() ?? [])].filter((req) => req.complete && !answeredByServer.has(req)).length;

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    let open = inFlight.get(socket);
    if (!open) inFlight.set(socket, (open = new Map()));
    open.set(res, req);
    const done = () => {
      open.delete(res);
      if (waitingFor(socket) === 0) afterInFlight.get(socket)?.();
    };
    res.once('finish', done);
    res.once('close', done);
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
      socket.destroy(); // the client is gone: nobody to answer
      return;
    }
    const error = apiError(err, timeouts);
    // The request whose body broke gets this error as its answer (the last one on the connection).
    for (const req of inFlight.get(socket)?.values() ?? []) if (!req.complete) answeredByServer.set(req, error);
    const answer = () => {
      afterInFlight.delete(socket);
      // A response that said Connection: close has already ended the socket; it must not be cut short.
      if (socket.destroyed || socket.writableEnded) return;
      socket.end(errorResponse(error));
      // A client that neither reads nor closes must not keep the connection: cut it after a moment.
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    };
    if (waitingFor(socket) === 0) answer();
    else afterInFlight.set(socket, answer);
  });
}

const seconds = (ms: number) => `${Math.round(ms) / 1000} s`;

/** Status as Node's default handler picks it; the message says what was wrong. */
function apiError(err: NodeJS.ErrnoException, timeouts: ServerTimeouts): TransferlabError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new TransferlabError('bad_request', 'the request headers are too large; send fewer or shorter headers', 431);
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new TransferlabError('bad_request', 'the chunk extensions are too large', 413);
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new TransferlabError(
        'request_timeout',
        `the request did not arrive in time (headers within ${seconds(timeouts.headersMs)}, the whole request within ${seconds(timeouts.requestMs)}); nothing was charged`,
        408,
      );
    case 'HPE_INVALID_EOF_STATE':
      return new TransferlabError('bad_request', 'the connection was half-closed before the body was complete (shorter than its Content-Length or its chunks); nothing was charged', 400);
    case 'HPE_INVALID_CHUNK_SIZE':
      return new TransferlabError('bad_request', 'invalid chunk size in the chunked body (each chunk starts with its size in hex, then CRLF); nothing was charged', 400);
    case 'HPE_STRICT':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
      return new TransferlabError('bad_request', `malformed chunked body or request framing (${err.code}: a chunk's data must be followed by CRLF); nothing was charged`, 400);
    default:
      return new TransferlabError(
        'bad_request',
        `the bytes sent are not a valid HTTP/1.1 request (${String(err.code ?? 'parse error').slice(0, 40)}); nothing after the last valid request was read`,
        400,
      );
  }
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large' };

/** The error in the API's {"error":{code,message}} format, written raw: there is no response object for it. */
function errorResponse(error: TransferlabError): string {
  const body = JSON.stringify({ error: { code: error.code, message: error.message } });
  return (
    `HTTP/1.1 ${error.status} ${REASONS[error.status] ?? 'Bad Request'}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Cache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}
