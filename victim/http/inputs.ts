import { TransferlabError } from '../../shared/errors.js';
import { BYTES_PER_PIXEL, HEADERS, PATHS, PIXEL_FORMATS, bytesPerImage, pixelsPerImage, type InputShape, type PixelFormat } from '../../shared/protocol/index.js';

/**
 * Parsing and validation of /v1/label bodies: pure functions from bytes to a batch of images of the
 * served shape, or a TransferlabError whose code and message tell the client exactly what to fix.
 * Hand-written rather than zod because a full batch holds ~10⁶ numbers and this path must stay
 * close to memcpy speed; the contract's zod schema of the same body feeds the OpenAPI document.
 */
export interface ImageBatch {
  /** count × H×W×C pixels in [0, 1], row-major HWC. */
  images: Float32Array;
  count: number;
}

/**
 * JSON bodies may spell each pixel with up to ~32 bytes (a float64 in full precision plus a comma
 * and some whitespace, or the brackets of a nested array); anything larger than that for maxBatch
 * images cannot be a valid batch.
 */
export const jsonBodyLimit = (shape: InputShape, maxBatch: number) => maxBatch * pixelsPerImage(shape) * 32 + 64 * 1024;
/**
 * Binary bodies are capped at maxBatch float32 images; a uint8 body under that cap but over maxBatch
 * images still gets the more helpful batch_too_large.
 */
export const binaryBodyLimit = (shape: InputShape, maxBatch: number) => maxBatch * bytesPerImage(shape, 'float32');

const fail = (code: string, message: string, status = 400) => new TransferlabError(code, message, status);
const dims = ([h, w, c]: InputShape) => `${h}×${w}×${c}`;

function checkCount(count: number, shape: InputShape, maxBatch: number): void {
  if (count === 0) throw fail('empty_batch', `the batch holds no images; send at least one ${dims(shape)} image`);
  if (count > maxBatch) {
    throw fail('batch_too_large', `the batch holds ${count} images but at most ${maxBatch} are accepted per request (see GET ${PATHS.info}); split it`, 413);
  }
}

export function parsePixelFormat(header: string | undefined): PixelFormat {
  if (header === undefined || header.trim() === '') return 'uint8';
  const value = header.trim().toLowerCase();
  if ((PIXEL_FORMATS as readonly string[]).includes(value)) return value as PixelFormat;
  throw fail('invalid_pixel_format', `${HEADERS.pixelFormat} "${header.slice(0, 40)}" is not supported; use ${PIXEL_FORMATS.join(' or ')} (default uint8)`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return `a ${typeof v}`;
}

const PIXEL_RULE = 'every pixel must be a finite number in [0, 1] (scale 8-bit pixels by 1/255)';

const shapeHint = (shape: InputShape) => {
  const [h, w, c] = shape;
  return `each image must be a flat array of ${pixelsPerImage(shape)} numbers (${dims(shape)}, row-major HWC) or nested [${h}][${w}][${c}]` + (c === 1 ? ` or [${h}][${w}]` : '');
};

/**
 * Copies one JSON image into `out` at `offset`: flat H·W·C numbers, nested [h][w][c], or, with one
 * channel, [h][w]. The form is decided by the first element, so a ragged mix is refused.
 */
function copyImage(image: unknown[], i: number, shape: InputShape, out: Float32Array, offset: number): void {
  const [h, w, c] = shape;
  const pixels = h * w * c;
  const put = (v: unknown, j: number, where: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw fail('invalid_pixel', `inputs[${i}]${where} is ${describe(v)}; ${PIXEL_RULE}`);
    if (v < 0 || v > 1) throw fail('pixel_out_of_range', `inputs[${i}]${where} is ${v}; ${PIXEL_RULE}`);
    out[offset + j] = v;
  };
  if (!Array.isArray(image[0])) {
    if (image.length !== pixels) throw fail('invalid_image_length', `inputs[${i}] has ${image.length} values; ${shapeHint(shape)}`);
    for (let j = 0; j < pixels; j++) put(image[j], j, `[${j}]`);
    return;
  }
  const wrong = (where: string, got: unknown) =>
    fail(Array.isArray(got) ? 'invalid_image_length' : 'invalid_image', `inputs[${i}]${where} is ${Array.isArray(got) ? `an array of ${got.length}` : describe(got)}; ${shapeHint(shape)}`);
  if (image.length !== h) throw wrong('', image);
  const grey = c === 1 && Array.isArray(image[0]) && !Array.isArray((image[0] as unknown[])[0]);
  for (let y = 0; y < h; y++) {
    const row: unknown = image[y];
    if (!Array.isArray(row) || row.length !== w) throw wrong(`[${y}]`, row);
    for (let x = 0; x < w; x++) {
      if (grey) {
        put(row[x], y * w + x, `[${y}][${x}]`);
        continue;
      }
      const px: unknown = row[x];
      if (!Array.isArray(px) || px.length !== c) throw wrong(`[${y}][${x}]`, px);
      for (let k = 0; k < c; k++) put(px[k], (y * w + x) * c + k, `[${y}][${x}][${k}]`);
    }
  }
}

/** {"inputs":[image, ...]} → images, each image flat or nested (see copyImage). */
export function parseJsonBatch(body: Buffer, shape: InputShape, maxBatch: number): ImageBatch {
  const example = `{"inputs":[[${pixelsPerImage(shape)} numbers], ...]}`;
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw fail('invalid_json', `the body is not valid JSON (${(e as Error).message.slice(0, 120)}); send ${example}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw fail('invalid_body', `the body must be a JSON object ${example}, not ${describe(doc)}`);
  }
  const fields = Object.keys(doc);
  const unknown = fields.filter((f) => f !== 'inputs');
  if (!fields.includes('inputs')) {
    throw fail('invalid_body', `the body has no "inputs" field${unknown.length ? ` (found ${unknown.slice(0, 5).map((f) => JSON.stringify(f)).join(', ')})` : ''}; send ${example}`);
  }
  if (unknown.length) {
    throw fail('unknown_field', `unknown field(s) ${unknown.slice(0, 5).map((f) => JSON.stringify(f)).join(', ')}; the body takes only "inputs"`);
  }
  const inputs = (doc as { inputs: unknown }).inputs;
  if (!Array.isArray(inputs)) throw fail('inputs_not_array', `"inputs" must be an array of images, not ${describe(inputs)}`);
  checkCount(inputs.length, shape, maxBatch);
  const pixels = pixelsPerImage(shape);
  const images = new Float32Array(inputs.length * pixels);
  for (let i = 0; i < inputs.length; i++) {
    const image: unknown = inputs[i];
    if (!Array.isArray(image)) throw fail('invalid_image', `inputs[${i}] is ${describe(image)}; ${shapeHint(shape)}`);
    copyImage(image, i, shape, images, i * pixels);
  }
  return { images, count: inputs.length };
}

/** N×H×W×C uint8 pixels (0..255), or with X-Pixel-Format: float32, N×H×W×C little-endian float32 in [0, 1]. */
export function parseBinaryBatch(body: Buffer, format: PixelFormat, shape: InputShape, maxBatch: number): ImageBatch {
  const pixels = pixelsPerImage(shape);
  const per = pixels * BYTES_PER_PIXEL[format];
  if (body.length % per !== 0) {
    const hint =
      format === 'uint8'
        ? `one uint8 image is ${per} bytes, ${dims(shape)} row-major HWC (for float32 pixels send ${HEADERS.pixelFormat}: float32)`
        : `one float32 image is ${per} bytes (${pixels} little-endian float32 values, ${dims(shape)} row-major HWC)`;
    throw fail('invalid_binary_length', `the body has ${body.length} bytes, not a multiple of ${per}: ${hint}`);
  }
  const count = body.length / per;
  checkCount(count, shape, maxBatch);
  const images = new Float32Array(count * pixels);
  if (format === 'uint8') {
    for (let i = 0; i < images.length; i++) images[i] = body[i] / 255;
    return { images, count };
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let i = 0; i < images.length; i++) {
    const v = view.getFloat32(i * 4, true);
    if (!Number.isFinite(v)) {
      throw fail('invalid_pixel', `image ${Math.floor(i / pixels)}, pixel ${i % pixels} is ${v}; ${PIXEL_RULE}`);
    }
    if (v < 0 || v > 1) {
      throw fail('pixel_out_of_range', `image ${Math.floor(i / pixels)}, pixel ${i % pixels} is ${v}; ${PIXEL_RULE}`);
    }
    images[i] = v;
  }
  return { images, count };
}
