import { TransferlabError } from '../shared/errors.js';
import { BYTES_PER_IMAGE, PIXEL_FORMATS, PIXEL_FORMAT_HEADER, type PixelFormat } from '../shared/label-api.js';
import { IMAGE_SIZE } from '../shared/mnist.js';

/**
 * Parsing and validation of /v1/label bodies: pure functions from bytes to a batch of images, or a
 * TransferlabError whose code and message tell the client exactly what to fix. Hand-written rather
 * than zod because a full batch holds ~784k numbers and this path must stay close to memcpy speed.
 */
export interface ImageBatch {
  /** count × 784 pixels in [0, 1], row-major. */
  images: Float32Array;
  count: number;
}

/**
 * JSON bodies may spell each pixel with up to ~32 bytes (a float64 in full precision plus a comma
 * and some whitespace); anything larger than that for maxBatch images cannot be a valid batch.
 */
export const jsonBodyLimit = (maxBatch: number) => maxBatch * IMAGE_SIZE * 32 + 64 * 1024;
/**
 * Binary bodies are capped at maxBatch float32 images; a uint8 body under that cap but over maxBatch
 * images still gets the more helpful batch_too_large.
 */
export const binaryBodyLimit = (maxBatch: number) => maxBatch * BYTES_PER_IMAGE.float32;

const fail = (code: string, message: string, status = 400) => new TransferlabError(code, message, status);

function checkCount(count: number, maxBatch: number): void {
  if (count === 0) throw fail('empty_batch', 'the batch holds no images; send at least one 28×28 image');
  if (count > maxBatch) {
    throw fail('batch_too_large', `the batch holds ${count} images but at most ${maxBatch} are accepted per request (see GET /v1/info); split it`, 413);
  }
}

export function parsePixelFormat(header: string | undefined): PixelFormat {
  if (header === undefined || header.trim() === '') return 'uint8';
  const value = header.trim().toLowerCase();
  if ((PIXEL_FORMATS as readonly string[]).includes(value)) return value as PixelFormat;
  throw fail('invalid_pixel_format', `${PIXEL_FORMAT_HEADER} "${header.slice(0, 40)}" is not supported; use ${PIXEL_FORMATS.join(' or ')} (default uint8)`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return `a ${typeof v}`;
}

const PIXEL_RULE = 'every pixel must be a finite number in [0, 1] (scale 8-bit pixels by 1/255)';

/** {"inputs":[[784 numbers in [0,1]], ...]} → images. */
export function parseJsonBatch(body: Buffer, maxBatch: number): ImageBatch {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw fail('invalid_json', `the body is not valid JSON (${(e as Error).message.slice(0, 120)}); send {"inputs":[[784 numbers], ...]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw fail('invalid_body', `the body must be a JSON object {"inputs":[[784 numbers], ...]}, not ${describe(doc)}`);
  }
  const fields = Object.keys(doc);
  const unknown = fields.filter((f) => f !== 'inputs');
  if (!fields.includes('inputs')) {
    throw fail('invalid_body', `the body has no "inputs" field${unknown.length ? ` (found ${unknown.slice(0, 5).map((f) => JSON.stringify(f)).join(', ')})` : ''}; send {"inputs":[[784 numbers], ...]}`);
  }
  if (unknown.length) {
    throw fail('unknown_field', `unknown field(s) ${unknown.slice(0, 5).map((f) => JSON.stringify(f)).join(', ')}; the body takes only "inputs"`);
  }
  const inputs = (doc as { inputs: unknown }).inputs;
  if (!Array.isArray(inputs)) throw fail('inputs_not_array', `"inputs" must be an array of images, not ${describe(inputs)}`);
  checkCount(inputs.length, maxBatch);
  const images = new Float32Array(inputs.length * IMAGE_SIZE);
  for (let i = 0; i < inputs.length; i++) {
    const image: unknown = inputs[i];
    if (!Array.isArray(image)) {
      throw fail('invalid_image', `inputs[${i}] is ${describe(image)}; each image must be a flat array of ${IMAGE_SIZE} numbers (28×28, row-major)`);
    }
    if (image.length !== IMAGE_SIZE) {
      throw fail('invalid_image_length', `inputs[${i}] has ${image.length} values; each image must be a flat array of ${IMAGE_SIZE} numbers (28×28, row-major)`);
    }
    const offset = i * IMAGE_SIZE;
    for (let j = 0; j < IMAGE_SIZE; j++) {
      const v: unknown = image[j];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw fail('invalid_pixel', `inputs[${i}][${j}] is ${describe(v)}; ${PIXEL_RULE}`);
      }
      if (v < 0 || v > 1) throw fail('pixel_out_of_range', `inputs[${i}][${j}] is ${v}; ${PIXEL_RULE}`);
      images[offset + j] = v;
    }
  }
  return { images, count: inputs.length };
}

/** N×784 uint8 pixels (0..255), or with X-Pixel-Format: float32, N×784 little-endian float32 in [0, 1]. */
export function parseBinaryBatch(body: Buffer, format: PixelFormat, maxBatch: number): ImageBatch {
  const per = BYTES_PER_IMAGE[format];
  if (body.length % per !== 0) {
    const hint =
      format === 'uint8'
        ? `one uint8 image is ${per} bytes (for float32 pixels send ${PIXEL_FORMAT_HEADER}: float32)`
        : `one float32 image is ${per} bytes (784 little-endian float32 values)`;
    throw fail('invalid_binary_length', `the body has ${body.length} bytes, not a multiple of ${per}: ${hint}`);
  }
  const count = body.length / per;
  checkCount(count, maxBatch);
  const images = new Float32Array(count * IMAGE_SIZE);
  if (format === 'uint8') {
    for (let i = 0; i < images.length; i++) images[i] = body[i] / 255;
    return { images, count };
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let i = 0; i < images.length; i++) {
    const v = view.getFloat32(i * 4, true);
    if (!Number.isFinite(v)) {
      throw fail('invalid_pixel', `image ${Math.floor(i / IMAGE_SIZE)}, pixel ${i % IMAGE_SIZE} is ${v}; ${PIXEL_RULE}`);
    }
    if (v < 0 || v > 1) {
      throw fail('pixel_out_of_range', `image ${Math.floor(i / IMAGE_SIZE)}, pixel ${i % IMAGE_SIZE} is ${v}; ${PIXEL_RULE}`);
    }
    images[i] = v;
  }
  return { images, count };
}
