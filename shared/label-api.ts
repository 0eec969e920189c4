/**
 * The victim's HTTP contract, version 1 (DESIGN.md "Victim HTTP API"): the types both the victim
 * and the adversary's oracle client speak, so neither side can drift from the other.
 */
import { IMAGE_SIZE } from './mnist.js';

export const API_VERSION = 1;
export const LABEL_PATH = '/v1/label';
export const INFO_PATH = '/v1/info';
export const OPENAPI_PATH = '/v1/openapi.json';
export const HEALTH_PATH = '/healthz';

/** Header selecting the binary body's pixel format; absent means uint8. */
export const PIXEL_FORMAT_HEADER = 'X-Pixel-Format';
export const PIXEL_FORMATS = ['uint8', 'float32'] as const;
export type PixelFormat = (typeof PIXEL_FORMATS)[number];
export const BYTES_PER_IMAGE: Record<PixelFormat, number> = { uint8: IMAGE_SIZE, float32: IMAGE_SIZE * 4 };

export interface VictimInfo {
  dataset: 'mnist';
  inputShape: [28, 28, 1];
  classes: number;
  inputRange: [0, 1];
  maxBatch: number;
  output: 'label';
}

export interface LabelRequestJson {
  inputs: number[][];
}

export interface BudgetStatus {
  /** Images charged to the caller so far, this request included. */
  used: number;
  /** null = unlimited. */
  limit: number | null;
}

export interface LabelResponse {
  labels: number[];
  budget: BudgetStatus;
}

export interface ApiErrorBody {
  error: { code: ApiErrorCode | string; message: string };
}

/** Every error code the victim sends, with its HTTP status. Clients branch on the code, never on the message. */
export const API_ERRORS = {
  not_found: 404,
  method_not_allowed: 405,
  missing_api_key: 401,
  invalid_api_key: 401,
  extraction_suspected: 403,
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
  internal_error: 500,
  model_failed: 500,
  ledger_unavailable: 503,
  audit_unavailable: 503,
  shutting_down: 503,
} as const;
export type ApiErrorCode = keyof typeof API_ERRORS;
