/**
 * The OpenAPI 3.1 document, generated from the contract's zod schemas (OpenAPI 3.1 schemas are
 * JSON Schema 2020-12, which is what z.toJSONSchema writes) and pinned to what the running
 * service serves: its image shape, class count and batch limit.
 */
import { z } from 'zod';
import {
  API_VERSION,
  HEADERS,
  IDEMPOTENCY_KEY_PATTERN,
  MEDIA_TYPES,
  PIXEL_FORMATS,
  ROUTES,
  budgetSchema,
  bytesPerImage,
  errorBodySchema,
  errorCodesByStatus,
  healthSchema,
  labelRequestJsonSchema,
  victimInfoSchema,
  type Route,
  type VictimInfo,
} from './contract.js';

type JsonSchema = Record<string, unknown>;

/** A component schema: JSON Schema without its own $schema line (the document declares the dialect). */
function schema(s: z.ZodType, io: 'input' | 'output' = 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** A route's operation under its path and method, both from the route table. */
const operation = (route: Route, op: object) => ({ [route.path]: { [route.method.toLowerCase()]: op } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string) => ({ content: { [MEDIA_TYPES.json]: { schema: ref(name) } } });

const ERROR_HINTS: Record<number, string> = {
  401: ' (send Authorization: Bearer <key>)',
  403: ': extraction_suspected — this key may not query the service any more; query_rejected — this batch held a query the detector flagged (X-Rejected-Images lists them), the key may go on; nothing was charged',
  422: ': an Idempotency-Key reused with a different body',
  429: '; rate_limited carries Retry-After',
};

export interface OpenApiOptions {
  info: VictimInfo;
  authenticated: boolean;
  /** Replays of Idempotency-Key requests kept, for the header's description. */
  idempotencyCapacity?: number;
}

export function openApiDocument(opts: OpenApiOptions): JsonSchema {
  const { info } = opts;
  const [h, w, c] = info.inputShape;
  const shape = `${h}×${w}×${c}`;
  const labelsSchema = z.object({
    labels: z.array(z.number().int().min(0).max(info.classes - 1)).describe('top-1 label of each image, in request order'),
    budget: budgetSchema,
  });
  const errors = Object.fromEntries(
    [...errorCodesByStatus()].map(([status, codes]) => [
      String(status),
      { description: `${codes.join(', ')}${ERROR_HINTS[status] ?? ''}`, ...json('Error') },
    ]),
  );
  const facts = (route: Route, summary: string, name: string) =>
    operation(route, { summary, security: [], responses: { '200': { description: summary, ...json(name) }, '405': { description: 'method_not_allowed', ...json('Error') } } });
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: `transferlab victim: label-only image classifier (${info.dataset ?? 'unnamed dataset'}, ${shape}, ${info.classes} classes)`,
      version: String(API_VERSION),
      description:
        `Answers only the top-1 label of each ${shape} image (row-major HWC). One image = one query, charged to the caller's budget; ` +
        'a batch that would exceed it is refused whole and nothing is charged. Errors carry a stable snake_case code.',
    },
    ...(opts.authenticated ? { security: [{ bearer: [] }] } : {}),
    paths: {
      ...facts(ROUTES.health, 'Liveness', 'Health'),
      ...facts(ROUTES.info, 'What a client needs to send valid queries', 'Info'),
      ...operation(ROUTES.budget, {
        summary: "The caller's query budget: images charged so far and the limit (null = unlimited); charges nothing",
        responses: {
          '200': { description: "the caller key's budget", ...json('Budget') },
          '401': { description: `missing_api_key, invalid_api_key${ERROR_HINTS[401]}`, ...json('Error') },
          '405': { description: 'method_not_allowed', ...json('Error') },
        },
      }),
      ...operation(ROUTES.openapi, { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } }),
      ...operation(ROUTES.label, {
        summary: 'Top-1 labels of a batch of images',
        parameters: [
          {
            name: HEADERS.pixelFormat,
            in: 'header',
            required: false,
            description:
              `For ${MEDIA_TYPES.binary} bodies: uint8 (default, ${bytesPerImage(info.inputShape, 'uint8')} bytes per image, 0..255) ` +
              `or float32 (${bytesPerImage(info.inputShape, 'float32')} bytes per image, little-endian, [0, 1]).`,
            schema: { type: 'string', enum: [...PIXEL_FORMATS] },
          },
          {
            name: HEADERS.idempotencyKey,
            in: 'header',
            required: false,
            description:
              'Repeating a request with the same key and the same body returns the labels already charged for, without charging again ' +
              `(last ${opts.idempotencyCapacity ?? 10_000} keys); such a replay carries the response header ${HEADERS.idempotentReplayed}: true. ` +
              'The same key with a different body is refused with 422.',
            schema: { type: 'string', pattern: IDEMPOTENCY_KEY_PATTERN.source },
          },
        ],
        requestBody: {
          required: true,
          content: {
            [MEDIA_TYPES.json]: { schema: ref('LabelRequest') },
            [MEDIA_TYPES.binary]: {
              schema: { type: 'string', format: 'binary', description: `N×${h}×${w}×${c} pixels, row-major HWC; 1 ≤ N ≤ ${info.maxBatch}` },
            },
          },
        },
        responses: { '200': { description: 'labels, in request order', ...json('Labels') }, ...errors },
      }),
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Health: schema(healthSchema),
        Info: { ...schema(victimInfoSchema), examples: [info] },
        LabelRequest: schema(labelRequestJsonSchema(info.inputShape, info.maxBatch), 'input'),
        Labels: schema(labelsSchema),
        Budget: schema(budgetSchema),
        Error: schema(errorBodySchema),
      },
    },
  };
}
