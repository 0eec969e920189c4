/**
 * One image as a PNG file, for endpoints whose handlers decode image files (TorchServe's default
 * image handlers open the request body with PIL; a JSON API may want base64 PNG). The pixels are the
 * uint8 bytes the oracle core quantised, so a PNG carries exactly what the answer cache is keyed by:
 * lossless, 8 bits, grayscale for one channel and RGB for three.
 */
import { PNG } from 'pngjs';
import { TransferlabError } from '../../shared/errors.js';

const GRAY = 0;
const RGB = 2;

/** PNG bytes of one row-major H×W×C uint8 image (C = 1 or 3). */
export function encodePng(pixels: Uint8Array, height: number, width: number, channels: number): Buffer {
  if (channels !== 1 && channels !== 3) {
    throw new TransferlabError('bad_target_shape', `a PNG body holds 1 (grayscale) or 3 (RGB) channels; the input shape has ${channels}`);
  }
  if (pixels.length !== height * width * channels) {
    throw new TransferlabError('bad_oracle_input', `a ${height}×${width}×${channels} image has ${height * width * channels} bytes, got ${pixels.length}`);
  }
  const colorType = channels === 1 ? GRAY : RGB;
  // Same input and output colour type: pngjs takes the bytes as they are, no RGBA round trip.
  return PNG.sync.write(
    { width, height, data: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength) } as PNG,
    { colorType, inputColorType: colorType, inputHasAlpha: false },
  );
}

/** The H×W×C uint8 pixels of a PNG (C = 1 keeps the red channel of a grayscale file, C = 3 drops alpha). */
export function decodePng(bytes: Uint8Array, channels: 1 | 3): { height: number; width: number; pixels: Uint8Array } {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new TransferlabError('bad_png', `not a PNG file: ${e instanceof Error ? e.message : String(e)}`);
  }
  const { width, height, data } = png; // always RGBA after decoding
  const pixels = new Uint8Array(width * height * channels);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < channels; c++) pixels[p * channels + c] = data[p * 4 + c];
  }
  return { height, width, pixels };
}
