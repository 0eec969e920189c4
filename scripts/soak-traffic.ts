import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { IMAGE_SIZE } from '../shared/datasets/index.js';
import { isTransferlabError } from '../shared/errors.js';
import { HEADERS, MEDIA_TYPES, ROUTES, contractClient, fetchTransport, type Answer, type ImagesBody } from '../shared/protocol/index.js';
import type { Rng } from '../shared/random.js';

/**
 * One soak client's requests (scripts/soak.ts): real MNIST test images in batches of 1–100, uint8 or
 * JSON, each with an Idempotency-Key; some re-sent with the same key (a retry: the same labels, not
 * charged again) and some malformed (each with the 4xx it must get). Every outcome is one of
 * answered / retried / refused as expected / error (with why).
 */
export type Outcome =
  | { kind: 'answered'; images: number; ms: number; used?: number }
  | { kind: 'retried'; ms: number }
  | { kind: 'refused'; ms: number }
  | { kind: 'error'; why: string; ms: number };

export interface TrafficMix {
  /** Share of requests that are malformed (default 0.05). */
  malformed: number;
  /** Share of answered requests re-sent with the same Idempotency-Key (default 0.1). */
  retry: number;
}

const transport = fetchTransport({ timeoutMs: 30_000 });

/** The contract's label request; a 200 that does not fit the contract's schema throws (an error outcome). */
function post(url: string, key: string, images: ImagesBody, idempotencyKey?: string): Promise<Answer<'label'>> {
  return contractClient(url, transport, { apiKey: key }).label({ images, idempotencyKey });
}

/** A chunked body with an invalid chunk size, over a raw socket: the status line it got, or 0 if none within 5 s. */
function badChunk(url: string, key: string): Promise<number> {
  const { hostname, port } = new URL(url);
  const { method, path } = ROUTES.label;
  const head = `${method} ${path} HTTP/1.1\r\nHost: victim\r\n${HEADERS.authorization}: Bearer ${key}\r\nContent-Type: ${MEDIA_TYPES.binary}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`;
  return new Promise((resolve) => {
    let text = '';
    const socket = connect(Number(port), hostname, () => socket.write(head));
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(/^HTTP\/1\.1 (\d{3})/.exec(text) ? Number(text.slice(9, 12)) : 0);
    };
    const timer = setTimeout(done, 5000);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes('\r\n\r\n')) done();
    });
    socket.on('close', done);
    socket.on('error', () => {});
  });
}

/** The next request of a client, run to its outcome(s): a retry adds a second outcome. */
export async function nextRequest(url: string, key: string, pixels: Uint8Array, rng: Rng, mix: TrafficMix): Promise<Outcome[]> {
  const started = performance.now();
  const ms = () => performance.now() - started;
  try {
    if (rng() < mix.malformed) {
      const which = Math.floor(rng() * 3);
      if (which === 2) {
        const status = await badChunk(url, key);
        return [status === 400 ? { kind: 'refused', ms: ms() } : { kind: 'error', why: `bad chunk got ${status || 'no answer'}`, ms: ms() }];
      }
      const sent = which === 0 ? await post(url, key, { json: '{"inputs":[[0.5, 0.5' }) : await post(url, key, { format: 'uint8', bytes: new Uint8Array(IMAGE_SIZE + 1) });
      const expected = which === 0 ? 'invalid_json' : 'invalid_binary_length';
      const code = sent.ok ? '' : sent.code;
      return [sent.status === 400 && code === expected ? { kind: 'refused', ms: ms() } : { kind: 'error', why: `malformed got ${sent.status} ${code}`, ms: ms() }];
    }
    const count = 1 + Math.floor(rng() * 100);
    const first = Math.floor(rng() * (pixels.length / IMAGE_SIZE - count));
    const images = pixels.slice(first * IMAGE_SIZE, (first + count) * IMAGE_SIZE);
    const json = rng() < 0.5;
    const body: ImagesBody = json
      ? { json: JSON.stringify({ inputs: Array.from({ length: count }, (_, i) => Array.from(images.subarray(i * IMAGE_SIZE, (i + 1) * IMAGE_SIZE), (v) => v / 255)) }) }
      : { format: 'uint8', bytes: images };
    const idempotencyKey = `soak-${randomUUID()}`;
    const sent = await post(url, key, body, idempotencyKey);
    const labels = sent.ok ? sent.value.labels : undefined;
    if (sent.status !== 200 || !labels || labels.length !== count || !labels.every((l) => l < 10)) {
      return [{ kind: 'error', why: `${count} images got ${sent.status} ${sent.ok ? `${labels?.length ?? 'no'} labels` : sent.code}`, ms: ms() }];
    }
    const answered: Outcome = { kind: 'answered', images: count, ms: ms(), used: sent.ok ? sent.value.budget.used : undefined };
    if (rng() >= mix.retry) return [answered];
    const again = performance.now();
    const retry = await post(url, key, body, idempotencyKey);
    const same = retry.ok && retry.status === 200 && retry.replayed && JSON.stringify(retry.value.labels) === JSON.stringify(labels);
    const retryMs = performance.now() - again;
    return [answered, same ? { kind: 'retried', ms: retryMs } : { kind: 'error', why: `retry got ${retry.status}, replayed ${retry.ok && retry.replayed}`, ms: retryMs }];
  } catch (e) {
    // An answer that does not fit the contract is the victim's fault, not the connection's.
    const why = isTransferlabError(e) ? `answer: ${e.message.slice(0, 120)}` : `connection: ${(e as Error).message.slice(0, 80)}`;
    return [{ kind: 'error', why, ms: ms() }];
  }
}
