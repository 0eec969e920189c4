import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a real redis-server that can cut a client off between two of its commands:
 * once armed, it forwards a client's commands up to and including the one `cutAfter` picks, drops
 * every byte after it and calls `onCut` — to Redis this is a client that died right after sending that
 * command. It reads the client's side as RESP (arrays of bulk strings, what ioredis sends), so the cut
 * falls exactly between commands however the client batched them into packets.
 */
export interface CutProxy {
  url: string;
  /** Cut the next client whose command makes `cutAfter` true (it sees each command's arguments). */
  arm(cutAfter: (args: string[]) => boolean, onCut: () => void): void;
  close(): Promise<void>;
}

/** Complete commands at the start of `buf`: their arguments and the bytes each ends at. */
function commands(buf: Buffer): { args: string[]; end: number }[] {
  const found: { args: string[]; end: number }[] = [];
  let at = 0;
  const line = (from: number) => {
    const eol = buf.indexOf('\r\n', from);
    return eol < 0 ? null : { text: buf.toString('latin1', from, eol), next: eol + 2 };
  };
  for (;;) {
    const head = line(at);
    if (!head || head.text[0] !== '*') return found;
    let p = head.next;
    const args: string[] = [];
    for (let i = Number(head.text.slice(1)); i > 0; i--) {
      const len = line(p);
      if (!len) return found;
      const n = Number(len.text.slice(1));
      if (len.next + n + 2 > buf.length) return found;
      args.push(buf.toString('latin1', len.next, len.next + n));
      p = len.next + n + 2;
    }
    found.push({ args, end: p });
    at = p;
  }
}

export async function startCutProxy(redisPort: number): Promise<CutProxy> {
  let armed: { cutAfter: (args: string[]) => boolean; onCut: () => void } | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    let cut = false;
    upstream.on('data', (d) => cut || client.write(d));
    client.on('data', (d) => {
      if (cut) return;
      pending = Buffer.concat([pending, d]);
      let sent = 0;
      for (const c of commands(pending)) {
        if (armed?.cutAfter(c.args)) {
          upstream.write(pending.subarray(sent, c.end));
          cut = true;
          const { onCut } = armed;
          armed = undefined;
          client.destroy(); // the client hears nothing more; Redis still runs what it was sent
          onCut();
          return;
        }
        upstream.write(pending.subarray(sent, c.end));
        sent = c.end;
      }
      pending = pending.subarray(sent);
    });
    const end = () => {
      client.destroy();
      // Only once Redis has read what was forwarded: end, not destroy.
      upstream.end();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', () => client.destroy()).on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}/0`,
    arm(cutAfter, onCut) {
      armed = { cutAfter, onCut };
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
