export * from './contract.js';
export { openApiDocument, type OpenApiOptions } from './openapi.js';
export * from './results.js';
export * from './evaluation.js';
