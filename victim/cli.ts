import { existsSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { pino } from 'pino';
import yargs from 'yargs';
import { describeBackend, initBackend, type BackendInfo } from '../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine, commandName } from '../shared/cli.js';
import { TransferlabError } from '../shared/errors.js';
import { isLayersFolder } from '../shared/model/layers-folder.js';
import { parseOutputPolicy, pixelsPerImage } from '../shared/protocol/index.js';
import { describeOutput, givesProbabilities, type OutputSettings } from './http/outputs.js';
import { PROTOCOLS, type Protocol } from './http/protocols/serving.js';
import { AdminKey } from './http/admin.js';
import { createApp } from './http/app.js';
import { FileAuditLog } from './store/audit.js';
import type { IdempotencyStore } from './store/idempotency.js';
import { ExtractionWatch, type DetectorAction } from './detect/detection.js';
import { PradaDetector, PRADA_DEFAULTS } from './detect/prada.js';
import { BlacklightDetector, BLACKLIGHT_DEFAULTS, type BlacklightScope } from './detect/blacklight.js';
import { detectorSet } from './detect/detectors.js';
import { MicroBatcher, warmUp } from './http/batcher.js';
import type { Layout } from './model/onnx-model.js';
import { openServedModel, type ServedModel } from './model/served-model.js';
import { KeyRing } from './store/keys.js';
import type { Budgets } from './store/ledger.js';
import { openVictimState } from './store/state.js';
import { startServer, WorkInFlight, type RunningServer } from './http/server.js';
import { main as trainMain } from './train/cli.js';
import { VICTIM_DEFAULTS } from './train/train.js';
import { SERVE_DEFAULTS, SERVE_OPTIONS } from './serve-options.js';

/**
 * `npm run victim`: serve the victim model over the label-only HTTP API.
 * Stdout gets a short banner ending in `listening on http://HOST:PORT` (scripts and tests parse it);
 * structured request logs (pino, JSON lines) go to stderr.
 */
function check(ok: boolean, message: string): void {
  if (!ok) throw new TransferlabError('invalid_config', message);
}

interface ServeArgs {
  model: string;
  layout?: string;
  classes?: string;
  dataset?: string;
  train: boolean;
  backend?: string;
  host: string;
  port: number;
  budget?: number;
  'max-batch': number;
  'rate-limit': number;
  'log-level': string;
  'headers-timeout': number;
  'request-timeout': number;
  'keep-alive-timeout': number;
  'model-name': string;
}

/** --output and --round as the service's output settings, or a clear error. */
function outputSettings(output: string, round: number | undefined): OutputSettings {
  let policy;
  try {
    policy = parseOutputPolicy(output);
  } catch (e) {
    throw new TransferlabError('invalid_config', `--output: ${(e as Error).message}`);
  }
  check(round === undefined || (Number.isInteger(round) && round >= 1 && round <= 6), `--round must be an integer number of decimals in 1..6 (got ${round})`);
  check(round === undefined || policy.kind !== 'label', '--round rounds probabilities, and --output label answers none: use it with --output topk:K or scores');
  return { policy, ...(round !== undefined ? { round } : {}) };
}

/** --protocol as a list, comma- or space-separated, each one known, transferlab's by default. */
function protocolList(values: string[]): Protocol[] {
  const list = [...new Set(values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== ''))];
  for (const p of list) check((PROTOCOLS as readonly string[]).includes(p), `--protocol ${p} is not one of ${PROTOCOLS.join(', ')}`);
  check(list.length > 0, `--protocol needs at least one of ${PROTOCOLS.join(', ')}`);
  return list as Protocol[];
}

/** Backend, model (trained first when the default one is missing), batcher, app and listening server. */
async function serve(
  args: ServeArgs,
  deps: {
    keys?: KeyRing;
    budgets: Budgets;
    audit: FileAuditLog;
    idempotency: IdempotencyStore;
    draining: () => boolean;
    inFlight: WorkInFlight;
    /** The extraction detector for the served model's image size and classes (undefined = off). */
    watchFor: (pixels: number, classes: number) => ExtractionWatch | undefined;
    adminKey?: AdminKey;
    output: OutputSettings;
    protocols: Protocol[];
  },
): Promise<{ info: BackendInfo; served: ServedModel; batcher: MicroBatcher; running: RunningServer; watch?: ExtractionWatch }> {
  const info = await initBackend(args.backend);
  const modelDir = args.model;
  if (!existsSync(modelDir) || (statSync(modelDir).isDirectory() && !isLayersFolder(modelDir))) {
    const isDefault = resolve(modelDir) === resolve(SERVE_DEFAULTS.model);
    // A file path (model.onnx, …) names the user's own model: training could not make it.
    if (!existsSync(modelDir) && extname(modelDir) !== '') {
      throw new TransferlabError(
        'model_missing',
        `${modelDir} does not exist. Give the path of an existing ONNX file (torch.onnx.export writes one), ` +
          `or export a project model folder to ONNX with \`npx tsx scripts/export-victim.ts --model models/victim --out DIR\` and serve DIR/model.onnx`,
      );
    }
    if (!isDefault || !args.train) {
      throw new TransferlabError(
        'model_missing',
        `no model in ${modelDir}; train one with \`npm run victim:train -- --out ${modelDir}\`` +
          (isDefault ? ' (or drop --no-train to have the victim train it)' : ''),
      );
    }
    console.log(`no model in ${modelDir}: training the default ${VICTIM_DEFAULTS.arch} first (once; it is saved there)`);
    await trainMain(['--out', modelDir, ...(args.backend ? ['--backend', args.backend] : [])]);
  }
  const served = await openServedModel(modelDir, { layout: args.layout as Layout | undefined, classesFile: args.classes, dataset: args.dataset });
  const pixels = pixelsPerImage(served.info.inputShape);
  // A label-only victim runs the labels-only model call it always did; the others also get probabilities.
  const batcher = new MicroBatcher(givesProbabilities(deps.output) ? (images, count) => served.predict(images, count) : (images, count) => served.label(images, count), {
    maxImages: Math.max(1024, args['max-batch']),
    maxDelayMs: 0,
    pixelsPerImage: pixels,
  });
  let watch: ExtractionWatch | undefined;
  try {
    await warmUp((images, count) => served.label(images, count), pixels);
    watch = deps.watchFor(pixels, served.info.classes);
  } catch (e) {
    await served.close();
    throw e;
  }
  const logger = pino({ level: args['log-level'], base: { service: 'victim' } }, pino.destination({ fd: 2, sync: true }));
  await deps.audit.record({
    time: new Date().toISOString(),
    event: 'service_started',
    model: { path: resolve(modelDir), format: served.format, weightsSha256: served.weightsSha256, ...served.info },
    pid: process.pid,
  });
  const app = createApp({
    label: (images, count) => batcher.label(images, count),
    model: served.info,
    keys: deps.keys,
    anonymousBudget: deps.keys ? null : (args.budget ?? null),
    budgets: deps.budgets,
    audit: deps.audit,
    maxBatch: args['max-batch'],
    rateLimit: args['rate-limit'],
    logger,
    draining: deps.draining,
    inFlight: deps.inFlight,
    watch,
    adminKey: deps.adminKey,
    idempotency: deps.idempotency,
    output: deps.output,
    predict: (images, count) => batcher.predict(images, count),
    protocols: deps.protocols,
    modelName: args['model-name'],
  });
  let running: RunningServer;
  try {
    running = await startServer(app, args.host, args.port, {
      headersMs: args['headers-timeout'] * 1000,
      requestMs: args['request-timeout'] * 1000,
      keepAliveMs: args['keep-alive-timeout'] * 1000,
    });
  } catch (e) {
    await served.close();
    throw e;
  }
  return { info, served, batcher, running, watch };
}

export async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .scriptName(commandName('npm run victim --'))
    .usage('$0 [options]\n\nServe the victim model: label-only HTTP API with API keys, query budgets and an audit log.')
    .options(SERVE_OPTIONS)
    .example('$0', `serve ${SERVE_DEFAULTS.model} on http://127.0.0.1:8080 (training it first if missing)`)
    .example('$0 --keys keys.json --port 0', 'keys and budgets from keys.json, any free port')
    .example('$0 --model model.onnx --classes classes.txt', 'serve an ONNX classifier (e.g. from torch.onnx.export), class names from classes.txt')
    .example('$0 --model web_model/', 'serve a Keras model converted with tensorflowjs_converter --input_format keras')
    .example('$0 --output topk:3 --round 2', 'also answer the 3 most probable classes, probabilities rounded to 2 decimals, at POST /v1/predict')
    .example('$0 --protocol transferlab,oip,tfserving --model-name mnist', 'also serve the Open Inference Protocol v2 (/v2/models/mnist/infer) and TF Serving (/v1/models/mnist:predict)')
    .example('$0 --keys keys.json --detector prada --detector-action block --admin-key-file admin.key', 'refuse keys flagged as extraction attacks')
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();

  check(Number.isInteger(args.port) && args.port >= 0 && args.port <= 65535, `--port must be an integer in 0..65535 (got ${args.port})`);
  check(Number.isInteger(args['max-batch']) && args['max-batch'] >= 1 && args['max-batch'] <= 10_000, `--max-batch must be an integer in 1..10000 (got ${args['max-batch']})`);
  check(args['rate-limit'] >= 0 && Number.isFinite(args['rate-limit']), `--rate-limit must be ≥ 0 requests/s (got ${args['rate-limit']})`);
  check(args['idempotency-ttl'] > 0 && Number.isFinite(args['idempotency-ttl']), `--idempotency-ttl must be a positive number of hours (got ${args['idempotency-ttl']})`);
  for (const name of ['headers-timeout', 'request-timeout', 'keep-alive-timeout'] as const) {
    check(Number.isFinite(args[name]) && args[name] >= 0.05 && args[name] <= 3600, `--${name} must be a number of seconds in 0.05..3600 (got ${args[name]})`);
  }
  // Node refuses a headers timeout longer than the request timeout (headers are part of the request).
  check(args['headers-timeout'] <= args['request-timeout'], `--headers-timeout (${args['headers-timeout']} s) must not exceed --request-timeout (${args['request-timeout']} s)`);
  check(args.budget === undefined || (Number.isInteger(args.budget) && args.budget >= 0), `--budget must be a non-negative integer (got ${args.budget})`);
  const output = outputSettings(args.output, args.round);
  const protocols = protocolList(args.protocol);
  check(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(args['model-name']), `--model-name must be 1-100 letters, digits, '_', '.' or '-' (got "${args['model-name']}")`);
  const kinds = new Set(args.detector.filter((d) => d !== 'none'));
  check(kinds.has('blacklight') || (args['blacklight-threshold'] === BLACKLIGHT_DEFAULTS.threshold && args['blacklight-matches'] === BLACKLIGHT_DEFAULTS.minMatches), '--blacklight-threshold and --blacklight-matches need --detector blacklight');
  check(kinds.has('blacklight') || args['blacklight-scope'] === BLACKLIGHT_DEFAULTS.scope, '--blacklight-scope needs --detector blacklight');
  // One global log in Redis holds Blacklight's one store; PRADA's per-key state cannot share it.
  check(
    args['blacklight-scope'] !== 'global' || !kinds.has('prada') || args.store === undefined,
    '--blacklight-scope global with --store needs --detector blacklight alone (its shared state is one log for all keys; run PRADA on a per-key victim)',
  );
  check(kinds.size > 0 || args['detector-action'] === 'log', '--detector-action needs --detector');
  check(kinds.has('prada') || (args['detector-delta'] === PRADA_DEFAULTS.delta && args['detector-window'] === PRADA_DEFAULTS.window), '--detector-delta and --detector-window need --detector prada');
  // Fail on a bad keys file (or detector setting) before minutes of training.
  const keys = args.keys ? KeyRing.fromFile(args.keys, args.budget ?? null) : undefined;
  const adminKey = args['admin-key-file'] ? AdminKey.fromFile(args['admin-key-file']) : undefined;
  const detectorOptions = { delta: args['detector-delta'], window: args['detector-window'] };
  const blacklightOptions = { threshold: args['blacklight-threshold'], minMatches: args['blacklight-matches'], scope: args['blacklight-scope'] as BlacklightScope };
  // Checked now with the default image size; built for the model's own once it has loaded.
  if (kinds.has('prada')) new PradaDetector(detectorOptions);
  if (kinds.has('blacklight')) new BlacklightDetector(blacklightOptions);

  const state = await openVictimState({
    store: args.store,
    replicaId: args['replica-id'],
    ledger: args.ledger,
    auditLog: args['audit-log'],
    idempotencyLog: args['idempotency-log'],
    idempotencyTtlMs: args['idempotency-ttl'] * 3600_000,
    defaultAuditLog: SERVE_DEFAULTS.auditLog,
  });
  for (const w of state.warnings) console.error(`warning: ${w}`);
  const { audit, events, budgets, idempotency } = state;
  let flagged = 0;
  const watchFor = (pixels: number, classes: number) => {
    if (kinds.size === 0) return undefined;
    const prada = kinds.has('prada') ? new PradaDetector({ ...detectorOptions, pixels, classes }) : undefined;
    const blacklight = kinds.has('blacklight') ? new BlacklightDetector(blacklightOptions) : undefined;
    const detector = detectorSet({ prada, blacklight });
    const watch = new ExtractionWatch(detector, args['detector-action'] as DetectorAction, audit, undefined, state.shared, state.sharedDetectorState?.(detector));
    flagged = watch.restore(events);
    return watch;
  };
  let draining = false;
  const inFlight = new WorkInFlight();
  let started: Awaited<ReturnType<typeof serve>>;
  try {
    started = await serve(args, { keys, budgets, audit, idempotency, draining: () => draining, inFlight, watchFor, adminKey, output, protocols });
  } catch (e) {
    await state.close();
    throw e;
  }
  const { info, served, batcher, running, watch } = started;

  const who = keys
    ? `${keys.size} API key(s) from ${args.keys}` + (args.budget !== undefined ? ` (default budget ${args.budget})` : '')
    : `open service (no keys), budget ${args.budget ?? 'unlimited'} for all callers together`;
  console.log(`model ${served.describe}`);
  console.log(`weights sha256 ${served.weightsSha256}${served.metadata ? '' : ' (no metadata.json: computed at start-up, in the audit log\'s start record)'}`);
  console.log(describeBackend(info));
  console.log(`timeouts: headers ${args['headers-timeout']} s, whole request ${args['request-timeout']} s, idle keep-alive ${args['keep-alive-timeout']} s`);
  console.log(
    `output: ${describeOutput(output)}${givesProbabilities(output) ? ` (probabilities: ${served.probabilitiesFrom})` : ''}; ` +
      `APIs: ${protocols.map((p) => (p === 'transferlab' ? 'transferlab (/v1/label, /v1/predict)' : p === 'oip' ? `oip (/v2/models/${args['model-name']})` : `tfserving (/v1/models/${args['model-name']})`)).join(', ')}`,
  );
  console.log(`access: ${who}; max ${args['max-batch']} images/request; rate limit ${args['rate-limit'] || 'off'}${args['rate-limit'] ? ' requests/s per key' : ''}`);
  console.log(
    watch
      ? `extraction detector: ${[
          watch.detector.settings.prada ? `PRADA, δ ${watch.detector.settings.prada.delta}, window ${watch.detector.settings.prada.window}` : '',
          watch.detector.settings.blacklight
            ? `Blacklight, ${watch.detector.settings.blacklight.threshold}/${watch.detector.settings.blacklight.hashes} shared hashes, ${watch.detector.settings.blacklight.minMatches} matches, scope ${watch.detector.settings.blacklight.scope}`
            : '',
        ].filter(Boolean).join('; ')}; action ${watch.action}` +
          ` (${flagged} client(s) flagged earlier)${adminKey ? '; detections at GET /v1/admin/detections' : ''}`
      : 'extraction detector: off',
  );
  for (const line of state.banner) console.log(line);
  // The pid matters because tsx runs the server as a child of its own wrapper process.
  console.log(`pid ${process.pid}`);
  console.log(`listening on ${running.url}`);

  const server = running;
  await new Promise<void>((done) => {
    const stop = (signal: NodeJS.Signals) => {
      if (draining) {
        console.error(`${signal} again: exiting now`);
        process.exit(1);
      }
      draining = true;
      console.log(`${signal}: no new connections; finishing requests in flight`);
      done();
    };
    // Kept installed: a second SIGTERM/Ctrl-C forces the exit.
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await server.close();
  await batcher.idle();
  await inFlight.idle(); // handlers whose client hung up still write their audit lines
  await served.close();
  await state.close(); // flushes and fsyncs anything still pending
  console.log(`stopped: ${batcher.stats.requests} labelled request(s), ${batcher.stats.images} image(s) in ${batcher.stats.modelCalls} model call(s)`);
  // wasm pthread workers would keep the process alive; everything durable is already on disk.
  setTimeout(() => process.exit(process.exitCode ?? 0), 100).unref();
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
