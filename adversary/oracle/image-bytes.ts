/**
 * What a client sends for each image, and how its answer is found again: the exact bytes on the wire
 * (quantised as a real client quantises them) and the answer cache's key of those bytes. Every oracle
 * goes through these (core.ts), and targets that carry their own idempotency key derive it here too.
 */
import { createHash } from 'node:crypto';
import { TransferlabError } from '../../shared/errors.js';
import { bytesPerImage as wireBytes, pixelsPerImage as imagePixels, type PixelFormat } from '../../shared/protocol/index.js';
import type { VictimInfo } from './oracle.js';

export function pixelsPerImage(info: VictimInfo): number {
  return imagePixels(info.inputShape);
}

export function bytesPerImage(info: VictimInfo, format: PixelFormat): number {
  return wireBytes(info.inputShape, format);
}

/**
 * The exact bytes a client puts on the wire: uint8 = round(v·255) clamped to 0..255, float32 =
 * v clamped to [0,1], little-endian. Non-finite pixels are refused: they are a bug upstream,
 * and quantising them silently would pay for a meaningless query.
 */
export function encodeImages(images: Float32Array, count: number, pixels: number, format: PixelFormat): Uint8Array {
  if (!Number.isInteger(count) || count < 0 || images.length < count * pixels) {
    throw new TransferlabError(
      'bad_oracle_input',
      `label() needs count×${pixels} pixels; got ${images.length} values for count ${count}`,
    );
  }
  const n = count * pixels;
  const out = new Uint8Array(format === 'uint8' ? n : n * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    const v = images[i];
    if (!Number.isFinite(v)) {
      throw new TransferlabError('bad_oracle_input', `image ${Math.floor(i / pixels)} has a non-finite pixel (${v})`);
    }
    const c = v < 0 ? 0 : v > 1 ? 1 : v;
    if (format === 'uint8') out[i] = Math.round(c * 255);
    else view.setFloat32(i * 4, c, true);
  }
  return out;
}

/** Cache key: the format tag and the exact bytes sent, so uint8 and float32 answers never mix. */
export function imageKey(bytes: Uint8Array, format: PixelFormat): string {
  return createHash('sha256').update(format === 'uint8' ? 'u8:' : 'f32:').update(bytes).digest('hex');
}
