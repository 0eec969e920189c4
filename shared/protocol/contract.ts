/**
 * The victim's HTTP contract, version 1: the routes (method, path, what a request carries, the schema
 * of its answer), headers, pixel formats and every error code with its HTTP status. Defined once
 * here; the victim mounts its routes from the table, every client builds its requests and checks its
 * answers through it (wire.ts), and the OpenAPI document is generated from it, so the two sides and
 * the published description cannot drift apart.
 */
import { z } from 'zod';
import { outputSchema } from './output.js';

export const API_VERSION = 1;

export const HEADERS = {
  /** Selects a binary body's pixel format; absent means uint8. */
  pixelFormat: 'X-Pixel-Format',
  /** Same key + same body = the labels already charged for, charged nothing. */
  idempotencyKey: 'Idempotency-Key',
  /** Response header on a replay: the client can tell nothing was charged. */
  idempotentReplayed: 'Idempotent-Replayed',
  /** Response header: the id under which the request was audited (always minted by the victim). */
  requestId: 'X-Request-Id',
  retryAfter: 'Retry-After',
  authorization: 'Authorization',
  /** Response header of a 403 query_rejected: the indices (0-based, comma-separated) of the batch's images the detector flagged. */
  rejectedImages: 'X-Rejected-Images',
} as const;

/** Wire pixel formats of application/octet-stream bodies: N×H×W×C values, row-major HWC. */
export const PIXEL_FORMATS = ['uint8', 'float32'] as const;
export type PixelFormat = (typeof PIXEL_FORMATS)[number];
export const BYTES_PER_PIXEL: Record<PixelFormat, number> = { uint8: 1, float32: 4 };

export const MEDIA_TYPES = { json: 'application/json', binary: 'application/octet-stream' } as const;

/** Idempotency keys: 1-255 printable ASCII characters without spaces (e.g. the sha256 hex of the body). */
export const IDEMPOTENCY_KEY_PATTERN = /^[!-~]{1,255}$/;

/** [height, width, channels] of one image. */
export type InputShape = [number, number, number];

export const pixelsPerImage = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const bytesPerImage = (shape: readonly number[], format: PixelFormat): number => pixelsPerImage(shape) * BYTES_PER_PIXEL[format];

const positiveInt = z.number().int().positive();

export const victimInfoSchema = z
  .object({
    /** Name of the dataset the model was trained on, when the service knows it; null otherwise. */
    dataset: z.string().min(1).nullable(),
    inputShape: z.tuple([positiveInt, positiveInt, positiveInt]).describe('[height, width, channels]; images are row-major HWC'),
    classes: z.number().int().min(2),
    classNames: z.array(z.string()).optional().describe('name of each class index, when known'),
    inputRange: z.tuple([z.literal(0), z.literal(1)]).describe('pixel values a JSON or float32 body may hold'),
    maxBatch: positiveInt.describe('most images per request'),
    output: outputSchema,
    round: z.number().int().min(1).max(6).optional().describe('probabilities are rounded to this many decimals (absent: not rounded)'),
  })
  .refine((i) => i.classNames === undefined || i.classNames.length === i.classes, {
    message: 'classNames must name every class exactly once',
    path: ['classNames'],
  });
export type VictimInfo = z.infer<typeof victimInfoSchema>;

export const budgetSchema = z.object({
  used: z.number().int().min(0).describe('images charged to the caller so far, this request included'),
  limit: z.number().int().min(0).nullable().describe('null = unlimited'),
});
export type BudgetStatus = z.infer<typeof budgetSchema>;

export const labelResponseSchema = z.object({
  labels: z.array(z.number().int().min(0)).describe('top-1 label of each image, in request order'),
  budget: budgetSchema,
});
export type LabelResponse = z.infer<typeof labelResponseSchema>;

const classProbabilitySchema = z.object({ class: z.number().int().min(0), p: z.number().min(0).max(1) });

/**
 * /v1/predict's answer: /v1/label's (`labels`, `budget`) and, as the victim's output policy allows,
 * `top` (topk:K: per image the K most probable classes, most probable first, the label first) or
 * `scores` (scores: per image every class's probability, in class order) — never both.
 */
export const predictResponseSchema = z
  .object({
    labels: z.array(z.number().int().min(0)).describe('top-1 label of each image, in request order (the same as /v1/label answers)'),
    top: z.array(z.array(classProbabilitySchema).min(1)).optional().describe('topk:K — per image the K most probable classes {class, p}, most probable first'),
    scores: z.array(z.array(z.number().min(0).max(1)).min(2)).optional().describe("scores — per image every class's probability, in class order"),
    budget: budgetSchema,
  })
  .refine((a) => (a.top === undefined) !== (a.scores === undefined), { message: 'exactly one of top and scores' })
  .refine((a) => (a.top ?? a.scores ?? []).length === a.labels.length, { message: 'one row of top or scores per label' });
export type PredictResponse = z.infer<typeof predictResponseSchema>;

export const healthSchema = z.object({ status: z.literal('ok') });

/** Enough of an OpenAPI document to know it is one; the document itself is checked by ajv in the tests. */
export const openApiAnswerSchema = z.looseObject({ openapi: z.string().startsWith('3.'), paths: z.record(z.string(), z.unknown()) });

/** What a request carries: nothing, or a batch of images (binary pixels, or JSON `{"inputs": […]}`). */
export type BodyKind = 'none' | 'images';

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  body: BodyKind;
  /** Reads the caller's key (`Authorization: Bearer`, when the victim has keys); the others need none. */
  keyed: boolean;
  /** The schema of a 2xx answer. */
  answer: z.ZodType;
  /** What a client says when a 2xx answer does not fit `answer`: its error code, and what was missing. */
  misfit: { code: string; says: string };
}

/**
 * Every route of API v1. The victim mounts exactly these (victim/http/app.ts) and the clients
 * derive paths, methods, bodies and answer types from them (wire.ts); the admin routes are the
 * operator's, outside the contract.
 */
export const ROUTES = {
  label: {
    method: 'POST',
    path: '/v1/label',
    body: 'images',
    keyed: true,
    answer: labelResponseSchema,
    misfit: { code: 'victim_bad_response', says: 'answered no {labels,budget}' },
  },
  /**
   * The label and, as the output policy allows, the K best probabilities or all of them; paid, watched
   * and audited as /v1/label is. A label-only victim refuses it (403 output_not_allowed, charged nothing).
   */
  predict: {
    method: 'POST',
    path: '/v1/predict',
    body: 'images',
    keyed: true,
    answer: predictResponseSchema,
    misfit: { code: 'victim_bad_response', says: 'answered no {labels,top|scores,budget}' },
  },
  /** The caller key's used and limit; free, and not watched by the detectors. */
  budget: { method: 'GET', path: '/v1/budget', body: 'none', keyed: true, answer: budgetSchema, misfit: { code: 'victim_bad_response', says: 'answered no {used,limit}' } },
  info: { method: 'GET', path: '/v1/info', body: 'none', keyed: false, answer: victimInfoSchema, misfit: { code: 'victim_info_invalid', says: 'did not answer a victim description (API v1)' } },
  openapi: { method: 'GET', path: '/v1/openapi.json', body: 'none', keyed: false, answer: openApiAnswerSchema, misfit: { code: 'victim_bad_response', says: 'answered no OpenAPI document' } },
  health: { method: 'GET', path: '/healthz', body: 'none', keyed: false, answer: healthSchema, misfit: { code: 'victim_bad_response', says: "answered no {status:'ok'}" } },
} as const satisfies Record<string, Route>;
export type RouteName = keyof typeof ROUTES;
export const ROUTE_NAMES = Object.keys(ROUTES) as RouteName[];

/** The path of each route, by name. */
export const PATHS = Object.fromEntries(ROUTE_NAMES.map((r) => [r, ROUTES[r].path])) as { [R in RouteName]: (typeof ROUTES)[R]['path'] };

/** The Allow header of a route's 405: express answers HEAD wherever it answers GET. */
export const allowedMethods = (route: Route): string => (route.method === 'GET' ? 'GET, HEAD' : route.method);

/** Every error code the victim sends, with its HTTP status. Clients branch on the code, never on the message. */
export const API_ERRORS = {
  not_found: 404,
  method_not_allowed: 405,
  missing_api_key: 401,
  invalid_api_key: 401,
  extraction_suspected: 403,
  output_not_allowed: 403,
  /** A detector with action `reject` flagged an image of this batch: the batch is refused, nothing charged, the key still served. */
  query_rejected: 403,
  rate_limited: 429,
  budget_exhausted: 429,
  unsupported_media_type: 415,
  unsupported_content_encoding: 415,
  invalid_content_encoding: 400,
  payload_too_large: 413,
  batch_too_large: 413,
  invalid_json: 400,
  invalid_body: 400,
  unknown_field: 400,
  inputs_not_array: 400,
  empty_batch: 400,
  invalid_image: 400,
  invalid_image_length: 400,
  invalid_pixel: 400,
  pixel_out_of_range: 400,
  invalid_binary_length: 400,
  invalid_pixel_format: 400,
  invalid_idempotency_key: 400,
  idempotency_key_reused: 422,
  bad_request: 400,
  request_timeout: 408,
  internal_error: 500,
  model_failed: 500,
  ledger_unavailable: 503,
  audit_unavailable: 503,
  shutting_down: 503,
} as const;
export type ApiErrorCode = keyof typeof API_ERRORS;
export const API_ERROR_CODES = Object.keys(API_ERRORS) as [ApiErrorCode, ...ApiErrorCode[]];

/** The error envelope of every non-2xx answer. */
export const errorBodySchema = z.object({
  error: z.object({
    code: z.enum(API_ERROR_CODES),
    message: z.string().min(1).describe('for people; may change between versions'),
  }),
});
export type ApiErrorBody = z.infer<typeof errorBodySchema>;

/** Lenient envelope for clients: a newer victim may send codes this version does not know. */
export const anyErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** Status codes the label endpoint can answer with an error, each with the codes it carries. */
export function errorCodesByStatus(): Map<number, ApiErrorCode[]> {
  const out = new Map<number, ApiErrorCode[]>();
  for (const code of API_ERROR_CODES) out.set(API_ERRORS[code], [...(out.get(API_ERRORS[code]) ?? []), code]);
  return new Map([...out.entries()].sort(([a], [b]) => a - b));
}

const pixelSchema = z.number().min(0).max(1);

/**
 * One image in a JSON body: a flat array of H·W·C numbers (row-major HWC), or nested [h][w][c]
 * (and, for one channel, [h][w]). Used for the OpenAPI document; the victim parses bodies by hand
 * (victim/http/inputs.ts) because a full batch is ~10⁶ numbers and that path must stay near memcpy speed.
 */
export function jsonImageSchema(shape: InputShape) {
  const [h, w, c] = shape;
  const flat = z.array(pixelSchema).length(h * w * c).describe(`flat: ${h * w * c} numbers in [0, 1], row-major ${h}×${w}×${c}`);
  const nested = z.array(z.array(z.array(pixelSchema).length(c)).length(w)).length(h).describe(`nested [${h}][${w}][${c}]`);
  if (c !== 1) return z.union([flat, nested]);
  const grey = z.array(z.array(pixelSchema).length(w)).length(h).describe(`nested [${h}][${w}] (one channel)`);
  return z.union([flat, nested, grey]);
}

export function labelRequestJsonSchema(shape: InputShape, maxBatch: number) {
  return z.strictObject({ inputs: z.array(jsonImageSchema(shape)).min(1).max(maxBatch) });
}
