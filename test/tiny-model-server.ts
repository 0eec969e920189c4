/**
 * A small TF.js model behind a real HTTP server on loopback, for the target tests: each test writes the
 * routes of the protocol it speaks (TorchServe, a custom JSON API) over the same model, and the server
 * keeps its own count of the images it labelled and when each request began, to check the client's
 * counts, budget and pace against.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs';

export const SHAPE: [number, number, number] = [4, 4, 1];
export const CLASSES = 4;
export const NAMES = ['ant', 'bee', 'cat', 'dog'];

/** A seeded dense softmax layer over 4×4 grayscale images: the same weights in every run. */
export async function tinyModel(): Promise<{ probs: (pixels: Float32Array, count: number) => Float32Array[]; labels: (pixels: Float32Array, count: number) => number[] }> {
  await tf.setBackend('cpu');
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [16], units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 2, seed: 11 }), biasInitializer: 'zeros' })],
  });
  const probs = (pixels: Float32Array, count: number): Float32Array[] =>
    tf.tidy(() => {
      const out = (model.predict(tf.tensor2d(pixels, [count, 16])) as tf.Tensor).dataSync() as Float32Array;
      return Array.from({ length: count }, (_, i) => out.slice(i * CLASSES, (i + 1) * CLASSES));
    });
  const labels = (pixels: Float32Array, count: number) => probs(pixels, count).map((p) => p.indexOf(Math.max(...p)));
  return { probs, labels };
}

export interface ServerLog {
  /** Images labelled, by the server's own count. */
  images: number;
  /** performance.now() at the start of each answered request. */
  starts: number[];
  /** Most requests in flight at once. */
  maxInFlight: number;
}

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse, log: ServerLog) => void | Promise<void>;

export async function startServer(handler: Handler, delayMs = 0): Promise<{ url: string; log: ServerLog; close: () => Promise<void> }> {
  const log: ServerLog = { images: 0, starts: [], maxInFlight: 0 };
  let inFlight = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      inFlight++;
      log.maxInFlight = Math.max(log.maxInFlight, inFlight);
      log.starts.push(performance.now());
      const answer = async () => {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        try {
          await handler(req, Buffer.concat(chunks), res, log);
        } catch (e) {
          json(res, 500, { error: String(e) });
        } finally {
          inFlight--;
        }
      };
      void answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** `count` random 4×4 images, as the bytes a client sends (and so as the server sees them), over 255. */
export function images(count: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: count * 16 }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 24) / 255;
  });
}
