import { join } from 'node:path';
import { initBackend } from '../shared/engine/backend.js';
import { TransferlabError } from '../shared/errors.js';
import { pixelsPerImage } from '../shared/protocol/index.js';
import { createApp, type ServedModelInfo } from '../victim/http/app.js';
import { MicroBatcher, warmUp } from '../victim/http/batcher.js';
import { startServer, WorkInFlight } from '../victim/http/server.js';
import { openServedModel, type ModelFormat } from '../victim/model/served-model.js';
import type { Layout } from '../victim/model/onnx-model.js';
import { MemoryAuditLog, type AuditSink } from '../victim/store/audit.js';
import { KeyRing } from '../victim/store/keys.js';
import { BudgetBook, type Budgets } from '../victim/store/ledger.js';
import { openVictimState } from '../victim/store/state.js';
import { SERVE_DEFAULTS } from '../victim/serve-options.js';

/**
 * A victim served from the caller's own process: the same model loading, micro-batcher, express app and
 * server as `transferlab victim`, without its command line, signals or banner. For a victim in its own
 * process (what the demo and the tests do), use spawnVictim.
 */
export interface VictimOptions {
  /** An ONNX file, a TF.js layers folder or a transferlab model folder (trained with trainVictim). */
  model: string;
  /** ONNX only: the input's layout when the model cannot tell. */
  layout?: Layout;
  /** Class names file for /v1/info (one per line, or a JSON array). */
  classes?: string;
  /** The dataset name /v1/info reports when the model does not record one. */
  dataset?: string;
  host?: string;
  /** 0 (the default): any free port; `url` says which. */
  port?: number;
  /** API keys and their budgets; without them the service is open (one anonymous principal). */
  keys?: { id: string; key: string; budget?: number | null }[] | string;
  /** Without keys: images all callers may have labelled together; with keys: the budget of keys that set none. */
  budget?: number;
  maxBatch?: number;
  /** Requests per second per key; 0 (the default here) turns the limit off. */
  rateLimit?: number;
  /** A folder for the ledger, idempotency records and audit log (budgets survive a restart); default: memory only. */
  stateDir?: string;
  /** Compute backend (tensorflow, wasm, cpu); default: the best available. */
  backend?: string;
}

export interface RunningVictim {
  url: string;
  format: ModelFormat;
  info: ServedModelInfo;
  weightsSha256: string;
  /** Stop accepting, finish requests in flight, release the model and flush the logs. */
  close(): Promise<void>;
}

export async function startVictim(options: VictimOptions): Promise<RunningVictim> {
  const maxBatch = options.maxBatch ?? SERVE_DEFAULTS.maxBatch;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 10_000) {
    throw new TransferlabError('invalid_config', `maxBatch must be an integer in 1..10000 (got ${maxBatch})`);
  }
  const keys = options.keys === undefined ? undefined : typeof options.keys === 'string' ? KeyRing.fromFile(options.keys, options.budget ?? null) : new KeyRing(options.keys, options.budget ?? null);
  await initBackend(options.backend);
  const state = options.stateDir
    ? await openVictimState({
        ledger: join(options.stateDir, 'ledger.jsonl'),
        auditLog: join(options.stateDir, 'audit.jsonl'),
        idempotencyTtlMs: SERVE_DEFAULTS.idempotencyTtlHours * 3600_000,
        defaultAuditLog: join(options.stateDir, 'audit.jsonl'),
      })
    : undefined;
  const budgets: Budgets = state?.budgets ?? new BudgetBook({ append: async () => {} });
  const audit: AuditSink = state?.audit ?? new MemoryAuditLog();
  let served: Awaited<ReturnType<typeof openServedModel>> | undefined;
  try {
    served = await openServedModel(options.model, { layout: options.layout, classesFile: options.classes, dataset: options.dataset });
    const model = served;
    const pixels = pixelsPerImage(model.info.inputShape);
    const batcher = new MicroBatcher((images, count) => model.label(images, count), { maxImages: Math.max(1024, maxBatch), maxDelayMs: 0, pixelsPerImage: pixels });
    await warmUp((images, count) => model.label(images, count), pixels);
    let draining = false;
    const inFlight = new WorkInFlight();
    const app = createApp({
      label: (images, count) => batcher.label(images, count),
      model: model.info,
      keys,
      anonymousBudget: keys ? null : (options.budget ?? null),
      budgets,
      audit,
      maxBatch,
      rateLimit: options.rateLimit ?? 0,
      draining: () => draining,
      inFlight,
      idempotency: state?.idempotency,
    });
    const running = await startServer(app, options.host ?? SERVE_DEFAULTS.host, options.port ?? 0);
    return {
      url: running.url,
      format: model.format,
      info: model.info,
      weightsSha256: model.weightsSha256,
      async close() {
        draining = true;
        await running.close();
        await batcher.idle();
        await inFlight.idle();
        await model.close();
        await state?.close();
      },
    };
  } catch (e) {
    await served?.close();
    await state?.close();
    throw e;
  }
}
