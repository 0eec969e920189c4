import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { IMAGE_SIZE } from '../shared/datasets/index.js';

/**
 * Raw HTTP/1.1 over a plain TCP socket, for the bytes no HTTP client library will send (broken
 * chunking, a body shorter than its Content-Length, a body trickled byte by byte), and a look at the
 * server process from outside (/proc): its open sockets and resident memory.
 */
export interface RawOutcome {
  /** The first response's status, or undefined when the server closed without answering. */
  status?: number;
  /** Its JSON body, when it had one. */
  body?: { error?: { code: string; message: string }; labels?: number[] };
  /** True when the server closed (or reset) the connection. */
  closed: boolean;
  ms: number;
}

export interface RawOptions {
  /** Send FIN after the bytes (the client's half-close). */
  halfClose?: boolean;
  /** Give up after this long; the outcome then has neither status nor closed. */
  waitMs?: number;
  /** Write the bytes in pieces this far apart instead of at once (a slow client). */
  trickle?: { pieces: Buffer[]; everyMs: number };
}

/** Write `bytes` on a fresh connection; settle on the first complete response, a close, or `waitMs`. */
export function rawExchange(url: string, bytes: Buffer, opts: RawOptions = {}): Promise<RawOutcome> {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise((resolve) => {
    let text = '';
    let trickle: NodeJS.Timeout | undefined;
    const socket: Socket = connect(Number(port), hostname, () => {
      if (opts.trickle) {
        const pieces = [...opts.trickle.pieces];
        socket.write(bytes);
        trickle = setInterval(() => {
          const piece = pieces.shift();
          if (!piece) return clearInterval(trickle);
          if (socket.writable) socket.write(piece);
        }, opts.trickle.everyMs);
      } else socket.write(bytes, () => opts.halfClose && socket.end());
    });
    const settle = (closed: boolean) => {
      clearTimeout(timer);
      clearInterval(trickle);
      const parsed = parseResponse(text);
      socket.destroy();
      resolve({ ...parsed, closed, ms: performance.now() - started });
    };
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (parseResponse(text).complete) settle(false);
    });
    socket.on('close', () => settle(true));
    socket.on('error', () => {}); // a reset is reported by 'close'
    const timer = setTimeout(() => {
      clearInterval(trickle);
      socket.removeAllListeners('close');
      socket.destroy();
      resolve({ ...parseResponse(text), closed: false, ms: performance.now() - started });
    }, opts.waitMs ?? 5000);
  });
}

function parseResponse(text: string): { status?: number; body?: RawOutcome['body']; complete: boolean } {
  const headEnd = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/1.1 ') || headEnd < 0) return { complete: false };
  const head = text.slice(0, headEnd);
  const status = Number(head.slice(9, 12));
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const raw = text.slice(headEnd + 4, headEnd + 4 + length);
  if (raw.length < length) return { status, complete: false };
  let body: RawOutcome['body'];
  try {
    body = raw ? (JSON.parse(raw) as RawOutcome['body']) : undefined;
  } catch {
    body = undefined;
  }
  return { status, body, complete: true };
}

/** A POST /v1/label head; `extra` are further header lines. */
export function labelHead(key: string, extra: string[]): string {
  return ['POST /v1/label HTTP/1.1', 'Host: victim', `Authorization: Bearer ${key}`, 'Content-Type: application/octet-stream', ...extra, '', ''].join('\r\n');
}

/** The three malformed bodies that once left their connection open, each with a label that says what is wrong. */
export function malformedBodies(key: string, pixels: Uint8Array): { name: string; bytes: Buffer; halfClose?: boolean }[] {
  const image = Buffer.from(pixels.subarray(0, IMAGE_SIZE));
  const chunked = labelHead(key, ['Transfer-Encoding: chunked']);
  return [
    { name: 'an invalid chunk size', bytes: Buffer.concat([Buffer.from(`${chunked}zz\r\n`), image, Buffer.from('\r\n0\r\n\r\n')]) },
    {
      name: 'chunk data not followed by CRLF',
      bytes: Buffer.concat([Buffer.from(`${chunked}${IMAGE_SIZE.toString(16)}\r\n`), image, Buffer.from('XX0\r\n\r\n')]),
    },
    {
      name: 'a Content-Length larger than the body, then a half-close',
      bytes: Buffer.concat([Buffer.from(labelHead(key, [`Content-Length: ${IMAGE_SIZE * 2}`])), image]),
      halfClose: true,
    },
  ];
}

/** Open TCP sockets of a process (listening one included), from its file descriptors. */
export function openSockets(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

/** Resident memory of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return kb / 1024;
}

/** Poll `probe` until it is ≤ `target` or `ms` passed; the last value. */
export async function settlesTo(probe: () => number, target: number, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let v = probe();
  while (v > target && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    v = probe();
  }
  return v;
}
