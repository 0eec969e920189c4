/**
 * How long a client may take, each chosen on purpose (the CLI's defaults; tests pass small ones):
 * - headersMs 10 s: headers are a few hundred bytes that any live client sends in one packet; 10 s
 *   forgives a congested link while capping how long a slow-loris connection that never finishes
 *   its headers holds a socket.
 * - requestMs 60 s: the whole request, body included (not the labelling, which starts once it has
 *   arrived). The largest body is about 3 MB (1,000 float32 images) or 25 MB of JSON; 60 s carries
 *   the binary one over a 1 Mbit/s link. A body trickled slower than that gets a 408 and the close.
 * - keepAliveMs 5 s: an idle connection between requests. It must outlast the clients' own idle
 *   timeout (undici, behind fetch, closes after 4 s) so a client never sends on a connection the
 *   server is closing that instant; longer would only hold idle sockets. Node advertises it in the
 *   Keep-Alive header and closes the idle socket 1 s after it (so clients that honour the header
 *   close first): an idle connection really lasts keepAliveMs + 1 s.
 * The headers and request timeouts are checked every connectionsCheckingInterval, set below.
 */
export interface ServerTimeouts {
  headersMs: number;
  requestMs: number;
  keepAliveMs: number;
}

export const SERVER_TIMEOUTS: ServerTimeouts = { headersMs: 10_000, requestMs: 60_000, keepAliveMs: 5_000 };
