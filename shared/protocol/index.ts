export * from './contract.js';
export { openApiDocument, type OpenApiOptions } from './openapi.js';
export * from './wire.js';
export * from './results.js';
export * from './evaluation.js';
export { partialMeasureSchema, plannedVsPaidSchema, type PartialMeasure, type PlannedVsPaid } from './results-fields.js';
export * from './output.js';
