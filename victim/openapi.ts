import { API_ERRORS, PIXEL_FORMAT_HEADER } from '../shared/label-api.js';
import { IMAGE_SIZE } from '../shared/mnist.js';

/** The OpenAPI 3.1 description served at GET /v1/openapi.json, built from the running configuration. */
export function openApiDocument(opts: { maxBatch: number; authenticated: boolean }): object {
  const error = { $ref: '#/components/schemas/Error' };
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: error } } });
  const codes = (status: number) =>
    Object.entries(API_ERRORS)
      .filter(([, s]) => s === status)
      .map(([c]) => c)
      .join(', ');
  const image = { type: 'array', minItems: IMAGE_SIZE, maxItems: IMAGE_SIZE, items: { type: 'number', minimum: 0, maximum: 1 } };
  return {
    openapi: '3.1.0',
    info: {
      title: 'transferlab victim: label-only MNIST classifier',
      version: '1',
      description:
        'Answers only the top-1 label of each 28×28 grey-scale image. One image = one query, charged to the caller\'s budget; ' +
        'a batch that would exceed it is refused whole and nothing is charged. Errors carry a stable snake_case code.',
    },
    ...(opts.authenticated ? { security: [{ bearer: [] }] } : {}),
    paths: {
      '/healthz': {
        get: {
          summary: 'Liveness',
          security: [],
          responses: { '200': { description: 'up', content: { 'application/json': { schema: { type: 'object', properties: { status: { const: 'ok' } } } } } } },
        },
      },
      '/v1/info': {
        get: {
          summary: 'What a client needs to send valid queries',
          security: [],
          responses: { '200': { description: 'service facts', content: { 'application/json': { schema: { $ref: '#/components/schemas/Info' } } } } },
        },
      },
      '/v1/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
      '/v1/label': {
        post: {
          summary: 'Top-1 labels of a batch of images',
          parameters: [
            {
              name: PIXEL_FORMAT_HEADER,
              in: 'header',
              required: false,
              description: 'For application/octet-stream bodies: uint8 (default, 784 bytes per image, 0..255) or float32 (3136 bytes per image, little-endian, [0, 1]).',
              schema: { type: 'string', enum: ['uint8', 'float32'] },
            },
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description:
                'Repeating a request with the same key and the same body returns the labels already charged for, without charging again ' +
                '(kept in memory, last 10,000 keys); such a replay carries the response header Idempotent-Replayed: true. ' +
                'The same key with a different body is refused with 422.',
              schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[!-~]+$' },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['inputs'],
                  properties: { inputs: { type: 'array', minItems: 1, maxItems: opts.maxBatch, items: image } },
                },
              },
              'application/octet-stream': {
                schema: { type: 'string', format: 'binary', description: `N×${IMAGE_SIZE} pixels, row-major; 1 ≤ N ≤ ${opts.maxBatch}` },
              },
            },
          },
          responses: {
            '200': { description: 'labels, in request order', content: { 'application/json': { schema: { $ref: '#/components/schemas/Labels' } } } },
            '400': errorResponse(`malformed request: ${codes(400)}`),
            '401': errorResponse(`${codes(401)} (send Authorization: Bearer <key>)`),
            '403': errorResponse(`${codes(403)}: this key may not query the service any more; nothing was charged`),
            '404': errorResponse('not_found'),
            '405': errorResponse('method_not_allowed'),
            '413': errorResponse(codes(413)),
            '415': errorResponse(codes(415)),
            '422': errorResponse(`${codes(422)}: an Idempotency-Key reused with a different body`),
            '429': errorResponse(`${codes(429)}; rate_limited carries Retry-After`),
            '500': errorResponse(codes(500)),
            '503': errorResponse(codes(503)),
          },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Info: {
          type: 'object',
          properties: {
            dataset: { const: 'mnist' },
            inputShape: { const: [28, 28, 1] },
            classes: { const: 10 },
            inputRange: { const: [0, 1] },
            maxBatch: { const: opts.maxBatch },
            output: { const: 'label' },
          },
        },
        Labels: {
          type: 'object',
          required: ['labels', 'budget'],
          properties: {
            labels: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 } },
            budget: {
              type: 'object',
              properties: { used: { type: 'integer' }, limit: { type: ['integer', 'null'], description: 'null = unlimited' } },
            },
          },
        },
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string', enum: Object.keys(API_ERRORS) }, message: { type: 'string' } },
            },
          },
        },
      },
    },
  };
}
