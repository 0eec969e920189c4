/**
 * The OpenAPI 3.1 document, generated from the contract's zod schemas (OpenAPI 3.1 schemas are
 * JSON Schema 2020-12, which is what z.toJSONSchema writes) and pinned to what the running
 * service serves: its image shape, class count and batch limit.
 */
import { z } from 'zod';
import { parseOutputPolicy } from './output.js';
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
  403: ': extraction_suspected — this key may not query the service any more; output_not_allowed — /v1/predict on a victim whose output policy gives labels only; query_rejected — this batch held a query the detector flagged (X-Rejected-Images lists them), the key may go on. Nothing was charged',
  422: ': an Idempotency-Key reused with a different body',
  429: '; rate_limited carries Retry-After',
};

export interface OpenApiOptions {
  info: VictimInfo;
  authenticated: boolean;
  /** Replays of Idempotency-Key requests kept, for the header's description. */
  idempotencyCapacity?: number;
}

/** /v1/predict's 200 answer under the victim's policy (info.output): `top` with K rows, or `scores` with every class. */
function predictAnswerSchema(info: VictimInfo) {
  const policy = parseOutputPolicy(info.output);
  const label = z.number().int().min(0).max(info.classes - 1);
  const p = z.number().min(0).max(1);
  const common = { labels: z.array(label).describe('top-1 label of each image, in request order'), budget: budgetSchema };
  if (policy.kind === 'topk') {
    const k = Math.min(policy.k, info.classes);
    const row = z.array(z.object({ class: label, p })).length(k).describe(`the ${k} most probable classes, most probable (the label) first`);
    return z.object({ ...common, top: z.array(row).describe('per image, in request order') });
  }
  return z.object({ ...common, scores: z.array(z.array(p).length(info.classes).describe("every class's probability, in class order")).describe('per image, in request order') });
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
  const policy = parseOutputPolicy(info.output);
  const rounded = info.round !== undefined ? `, rounded to ${info.round} decimal(s)` : '';
  const imagesBody = (summary: string, answers: object) => ({
    summary,
    parameters: imageParameters,
    requestBody: {
      required: true,
      content: {
        [MEDIA_TYPES.json]: { schema: ref('LabelRequest') },
        [MEDIA_TYPES.binary]: { schema: { type: 'string', format: 'binary', description: `N×${h}×${w}×${c} pixels, row-major HWC; 1 ≤ N ≤ ${info.maxBatch}` } },
      },
    },
    responses: answers,
  });
  const imageParameters = [
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
        'Repeating a request with the same key and the same body returns the answer already charged for, without charging again ' +
        `(last ${opts.idempotencyCapacity ?? 10_000} keys); such a replay carries the response header ${HEADERS.idempotentReplayed}: true. ` +
        'The same key with a different body is refused with 422.',
      schema: { type: 'string', pattern: IDEMPOTENCY_KEY_PATTERN.source },
    },
  ];
  const predictOperation =
    policy.kind === 'label'
      ? {
          summary: `Refused: this victim's output policy is "label" — it answers labels only (${ROUTES.label.path}), never probabilities`,
          responses: { '403': { description: 'output_not_allowed; nothing is read or charged', ...json('Error') }, '401': errors['401'], '405': errors['405'] },
        }
      : imagesBody(
          policy.kind === 'topk'
            ? `Top-1 labels and the ${policy.k} most probable classes with their probabilities${rounded}, per image`
            : `Top-1 labels and every class's probability${rounded}, per image`,
          { '200': { description: 'labels and probabilities, in request order', ...json('Predictions') }, ...errors },
        );
  const facts = (route: Route, summary: string, name: string) =>
    operation(route, { summary, security: [], responses: { '200': { description: summary, ...json(name) }, '405': { description: 'method_not_allowed', ...json('Error') } } });
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: `transferlab victim: ${policy.kind === 'label' ? 'label-only ' : ''}image classifier (${info.dataset ?? 'unnamed dataset'}, ${shape}, ${info.classes} classes, output ${info.output})`,
      version: String(API_VERSION),
      description:
        (policy.kind === 'label'
          ? `Answers only the top-1 label of each ${shape} image (row-major HWC). `
          : `Answers the top-1 label of each ${shape} image (row-major HWC) at ${ROUTES.label.path}, and at ${ROUTES.predict.path} the label with ` +
            `${policy.kind === 'topk' ? `the ${policy.k} most probable classes` : "every class's probability"}${rounded}. `) +
        "One image = one query, charged to the caller's budget; " +
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
      ...operation(ROUTES.label, imagesBody('Top-1 labels of a batch of images', { '200': { description: 'labels, in request order', ...json('Labels') }, ...errors })),
      ...operation(ROUTES.predict, predictOperation),
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Health: schema(healthSchema),
        Info: { ...schema(victimInfoSchema), examples: [info] },
        LabelRequest: schema(labelRequestJsonSchema(info.inputShape, info.maxBatch), 'input'),
        Labels: schema(labelsSchema),
        ...(policy.kind === 'label' ? {} : { Predictions: schema(predictAnswerSchema(info)) }),
        Budget: schema(budgetSchema),
        Error: schema(errorBodySchema),
      },
    },
  };
}
