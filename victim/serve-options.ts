import type { Options } from 'yargs';
import { backendOption } from '../shared/cli-options.js';
import { DETECTOR_ACTIONS } from './detect/detection.js';
import { PRADA_DEFAULTS } from './detect/prada.js';
import { BLACKLIGHT_DEFAULTS, BLACKLIGHT_SCOPES } from './detect/blacklight.js';
import { SERVER_TIMEOUTS } from './http/timeouts.js';
import { LAYOUTS } from './model/onnx-model.js';
import { VICTIM_DEFAULTS } from './train/train.js';

/** `npm run victim`'s settings: defaults other tools start the victim with, and every flag with its help line. */
export const SERVE_DEFAULTS = {
  model: VICTIM_DEFAULTS.out,
  host: '127.0.0.1',
  port: 8080,
  auditLog: 'runs/victim/audit.jsonl',
  ledger: 'runs/victim/ledger.jsonl',
  /** Hours an Idempotency-Key is remembered after its charge. */
  idempotencyTtlHours: 24,
  maxBatch: 1000,
  rateLimit: 100,
  output: 'label',
  protocol: ['transferlab'],
  modelName: 'model',
};

export const SERVE_OPTIONS = {
  model: {
    type: 'string',
    default: SERVE_DEFAULTS.model,
    describe: 'the model: an ONNX file (.onnx), a TF.js layers folder (model.json + its weight files, as tensorflowjs_converter writes it), or a transferlab model folder',
  },
  layout: { type: 'string', choices: LAYOUTS, describe: "ONNX only: the input's layout when the model cannot tell (nchw: PyTorch; nhwc: Keras/TensorFlow)" },
  classes: { type: 'string', describe: 'class names file: one name per line (class 0 first) or a JSON array; served in /v1/info' },
  dataset: { type: 'string', describe: 'name of the dataset the model was trained on, for /v1/info (default: metadata.json\'s, else none)' },
  host: { type: 'string', default: SERVE_DEFAULTS.host, describe: 'address to listen on' },
  port: { type: 'number', default: SERVE_DEFAULTS.port, describe: 'TCP port (0 = any free port; the URL is printed)' },
  keys: { type: 'string', describe: 'keys file {"keys":[{"id","key","budget"}]}; without it the service is open' },
  budget: { type: 'number', describe: 'without --keys: images all callers may have labelled together; with --keys: budget of keys that set none' },
  'audit-log': { type: 'string', describe: `audit log (JSON lines, appended) [default: ${SERVE_DEFAULTS.auditLog}; with --store audit-<replica id>.jsonl beside it]` },
  ledger: { type: 'string', default: SERVE_DEFAULTS.ledger, describe: 'query ledger (JSON lines, appended; budgets survive restarts); unused with --store' },
  store: { type: 'string', describe: 'shared state for replicas: budgets, idempotency records, detector state and blocks in Redis (redis://HOST:PORT/DB; run it with appendonly yes, appendfsync always)' },
  'replica-id': { type: 'string', describe: 'this replica\'s name in its audit log\'s file name, with --store [default: <hostname>-<pid>]' },
  'idempotency-log': { type: 'string', describe: 'Idempotency-Key records (JSON lines; replays survive restarts) [default: the ledger path with .idempotency.jsonl]' },
  'idempotency-ttl': { type: 'number', default: SERVE_DEFAULTS.idempotencyTtlHours, describe: 'hours an Idempotency-Key is remembered after its charge' },
  'max-batch': { type: 'number', default: SERVE_DEFAULTS.maxBatch, describe: 'most images per request' },
  'rate-limit': { type: 'number', default: SERVE_DEFAULTS.rateLimit, describe: 'requests per second per key (per client IP when open); 0 = off' },
  train: { type: 'boolean', default: true, describe: `train the default ${VICTIM_DEFAULTS.arch} when the default model folder is empty (--no-train: error instead)` },
  backend: backendOption,
  // Why each default: victim/http/timeouts.ts, ServerTimeouts.
  'headers-timeout': { type: 'number', default: SERVER_TIMEOUTS.headersMs / 1000, describe: 'seconds a client has to send the request headers (408 and close after)' },
  'request-timeout': { type: 'number', default: SERVER_TIMEOUTS.requestMs / 1000, describe: 'seconds a client has to send the whole request, body included (408 and close after); not the labelling time' },
  'keep-alive-timeout': { type: 'number', default: SERVER_TIMEOUTS.keepAliveMs / 1000, describe: 'seconds an idle keep-alive connection stays open between requests (advertised in the Keep-Alive header; Node closes it 1 s later)' },
  'log-level': { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error', 'silent'], describe: 'request log level (stderr)' },
  detector: { type: 'string', array: true, default: ['none'], choices: ['none', 'prada', 'blacklight'], describe: 'detection on every query: prada (model extraction), blacklight (query-based attacks), or both: --detector prada blacklight' },
  'blacklight-threshold': { type: 'number', default: BLACKLIGHT_DEFAULTS.threshold, describe: `Blacklight: hashes (of ${BLACKLIGHT_DEFAULTS.hashes}) a query must share with one earlier query to match` },
  'blacklight-matches': { type: 'number', default: BLACKLIGHT_DEFAULTS.minMatches, describe: 'Blacklight: matched queries that flag a client' },
  'blacklight-scope': {
    type: 'string',
    default: BLACKLIGHT_DEFAULTS.scope,
    choices: BLACKLIGHT_SCOPES,
    describe: 'Blacklight: one hash store per key, or one global store for all keys (as the paper; catches an attack spread over many keys)',
  },
  'detector-delta': { type: 'number', default: PRADA_DEFAULTS.delta, describe: 'flag a client when the Shapiro–Wilk W of its query distances falls below this' },
  'detector-action': { type: 'string', default: 'log', choices: DETECTOR_ACTIONS, describe: 'log: audit and admin endpoint only; block: also refuse the client\'s later queries (403 extraction_suspected); reject: refuse each batch holding a flagged query (403 query_rejected, nothing charged), keep serving the client' },
  'detector-window': { type: 'number', default: PRADA_DEFAULTS.window, describe: 'distances W is computed over (the last N per client)' },
  output: {
    type: 'string',
    default: SERVE_DEFAULTS.output,
    describe: 'what answers carry: label (top-1 only), topk:K (the K best classes with probabilities, at /v1/predict) or scores (every class\'s probability)',
  },
  round: { type: 'number', describe: 'round the probabilities answered to this many decimals (1..6); needs --output topk:K or scores' },
  protocol: {
    type: 'string',
    array: true,
    default: SERVE_DEFAULTS.protocol,
    describe: 'APIs served, comma- or space-separated: transferlab (/v1/label, /v1/predict, …), oip (Open Inference Protocol v2: KServe, Triton), tfserving (TF Serving REST)',
  },
  'model-name': { type: 'string', default: SERVE_DEFAULTS.modelName, describe: 'the model\'s name in the oip and tfserving routes (/v2/models/NAME, /v1/models/NAME)' },
  'admin-key-file': { type: 'string', describe: 'file holding the admin key (first line): enables GET /v1/admin/detections' },
} satisfies Record<string, Options>;
