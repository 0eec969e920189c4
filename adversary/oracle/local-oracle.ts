/**
 * The oracle over a local labeller: the same counting, answer cache and quantisation as the HTTP
 * client (core.ts), with a function in place of the victim. For unit tests and white-box-style
 * experiments; black-box attack tests use the HTTP victim.
 */
import type { Labeler } from '../../shared/labeler.js';
import type { VictimInfo } from './oracle.js';
import type { RunStore } from '../run/store.js';
import { buildOracle, oracleStore, type CountingOracle, type PixelFormat, type SendBatch } from './core.js';

const DEFAULT_INFO: VictimInfo = {
  dataset: 'mnist',
  inputShape: [28, 28, 1],
  classes: 10,
  inputRange: [0, 1],
  maxBatch: 1024,
  output: 'label',
};

/**
 * A local labeller behind the same counting, cache and quantisation as the HTTP client: `fn`
 * sees exactly what the victim would decode (uint8 bytes / 255, or the clamped float32 values).
 * For unit tests and white-box-style experiments; black-box attack tests must use the HTTP victim.
 */
export function oracleFromLabeler(
  fn: Labeler,
  info?: Partial<VictimInfo>,
  opts: { format?: PixelFormat; cacheDir?: string; store?: RunStore } = {},
): CountingOracle {
  const full: VictimInfo = { ...DEFAULT_INFO, ...info };
  const format = opts.format ?? 'uint8';
  const send: SendBatch = async (body, count) => {
    const decoded =
      format === 'uint8'
        ? Float32Array.from(body, (b) => b / 255)
        : // little-endian on the wire, and every platform Node runs on is little-endian
          new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    return { labels: await fn(decoded, count) };
  };
  return buildOracle({ info: full, format, send, store: oracleStore(opts) });
}
