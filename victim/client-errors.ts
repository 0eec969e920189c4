import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Bytes on a connection that are not valid HTTP (or a request that took too long to arrive).
 *
 * Node's default answers with its own 400 and destroys the socket at once — even while an earlier
 * request on the same keep-alive connection, pipelined in the same packet, is still being labelled.
 * That request would then be charged and audited as answered while its client saw only the 400,
 * and read it as the answer to what it sent. Here the connection's responses in flight are written
 * first; then the error response (in the API's error format) and the connection is closed.
 */
export function answerClientErrorsInOrder(server: Server): void {
  const inFlight = new WeakMap<Duplex, Set<ServerResponse>>();
  const afterInFlight = new WeakMap<Duplex, () => void>();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    let open = inFlight.get(socket);
    if (!open) inFlight.set(socket, (open = new Set()));
    open.add(res);
    const done = () => {
      open.delete(res);
      if (open.size === 0) afterInFlight.get(socket)?.();
    };
    res.once('finish', done);
    res.once('close', done);
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
      socket.destroy(); // the client is gone: nobody to answer
      return;
    }
    const answer = () => {
      afterInFlight.delete(socket);
      // A response that said Connection: close has already ended the socket; it must not be cut short.
      if (socket.destroyed || socket.writableEnded) return;
      socket.end(errorResponse(err));
    };
    if ((inFlight.get(socket)?.size ?? 0) === 0) answer();
    else afterInFlight.set(socket, answer);
  });
}

/** Status as Node's default handler picks it; the body in the API's {"error":{code,message}} format. */
function errorResponse(err: NodeJS.ErrnoException): string {
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are too large; send fewer or shorter headers']
      : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
        ? [413, 'Payload Too Large', 'the chunk extensions are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'the request did not arrive in time (headers within 10 s, the whole request within 60 s)']
          : [400, 'Bad Request', `the bytes sent are not a valid HTTP/1.1 request (${String(err.code ?? 'parse error').slice(0, 40)}); nothing after the last valid request was read`];
  const body = JSON.stringify({ error: { code: 'bad_request', message } });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Cache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}
