import { TransferlabError } from '../../../shared/errors.js';
import { pixelsPerImage, type InputShape } from '../../../shared/protocol/index.js';

/**
 * Reading images out of the JSON tensors of the serving protocols (OIP, TF Serving): nested arrays in
 * their natural shape or flattened row-major, every value checked, each failure a clear 400 naming
 * where in the body it is. Values are FP32 pixels in [0, 1] or UINT8 pixels in 0..255 (scaled by
 * 1/255), the same images /v1/label takes.
 */
export type PixelType = 'FP32' | 'UINT8';

export const badTensor = (message: string) => new TransferlabError('invalid_tensor', message, 400);

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return `a ${typeof v}`;
}

/** Parses a JSON body, refusing anything but an object. */
export function parseJsonObject(body: Buffer, example: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new TransferlabError('invalid_json', `the body is not valid JSON (${(e as Error).message.slice(0, 120)}); send ${example}`, 400);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new TransferlabError('invalid_body', `the body must be a JSON object ${example}, not ${describeValue(doc)}`, 400);
  return doc as Record<string, unknown>;
}

/** Refuses fields the protocol does not define here, by name. */
export function onlyFields(doc: Record<string, unknown>, allowed: readonly string[], where: string): void {
  const unknown = Object.keys(doc).filter((f) => !allowed.includes(f));
  if (unknown.length) {
    throw new TransferlabError('unknown_field', `unknown field(s) ${unknown.slice(0, 5).map((f) => JSON.stringify(f)).join(', ')} in ${where}; it takes ${allowed.map((f) => JSON.stringify(f)).join(', ')}`, 400);
  }
}

/** Writes one pixel of `type` to out[at], in [0, 1]. */
function pixelWriter(type: PixelType, out: Float32Array) {
  const rule = type === 'UINT8' ? 'UINT8 pixels are integers in 0..255' : 'FP32 pixels are finite numbers in [0, 1] (scale 8-bit pixels by 1/255, or send UINT8)';
  return (v: unknown, at: number, where: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new TransferlabError('invalid_pixel', `${where} is ${describeValue(v)}; ${rule}`, 400);
    if (type === 'UINT8') {
      if (!Number.isInteger(v) || v < 0 || v > 255) throw new TransferlabError('pixel_out_of_range', `${where} is ${v}; ${rule}`, 400);
      out[at] = v / 255;
    } else {
      if (v < 0 || v > 1) throw new TransferlabError('pixel_out_of_range', `${where} is ${v}; ${rule}`, 400);
      out[at] = v;
    }
  };
}

/**
 * Copies a tensor of `dims` into out from `offset`: nested to exactly those dimensions, or (when
 * `flatAllowed`) one flat row-major array of their product. `where` names it in errors.
 */
export function copyTensor(data: unknown, dims: readonly number[], type: PixelType, out: Float32Array, offset: number, where: string, flatAllowed = true): void {
  const put = pixelWriter(type, out);
  const total = dims.reduce((a, b) => a * b, 1);
  if (!Array.isArray(data)) throw badTensor(`${where} is ${describeValue(data)}, not an array of [${dims.join(', ')}] values`);
  if (flatAllowed && data.length === total && !Array.isArray(data[0])) {
    for (let i = 0; i < total; i++) put(data[i], offset + i, `${where}[${i}]`);
    return;
  }
  let at = offset;
  const walk = (node: unknown, depth: number, path: string): void => {
    if (depth === dims.length) {
      put(node, at++, path);
      return;
    }
    if (!Array.isArray(node) || node.length !== dims[depth]) {
      throw badTensor(
        `${path} is ${describeValue(node)} where the tensor's shape [${dims.join(', ')}] needs an array of ${dims[depth]}` +
          (flatAllowed ? ` (or send ${where} flat: ${total} numbers, row-major)` : ''),
      );
    }
    for (let i = 0; i < node.length; i++) walk(node[i], depth + 1, `${path}[${i}]`);
  };
  walk(data, 0, where);
}

/**
 * One image of `shape` as TF Serving's row format spells it: nested [H][W][C], nested [H][W] for one
 * channel, or flat H·W·C numbers.
 */
export function copyImage(data: unknown, shape: InputShape, out: Float32Array, offset: number, where: string): void {
  const [h, w, c] = shape;
  const grey = c === 1 && Array.isArray(data) && Array.isArray(data[0]) && !Array.isArray((data[0] as unknown[])[0]);
  const flat = Array.isArray(data) && data.length === pixelsPerImage(shape) && !Array.isArray(data[0]);
  copyTensor(data, grey ? [h, w] : flat ? [pixelsPerImage(shape)] : [h, w, c], 'FP32', out, offset, where, false);
}
