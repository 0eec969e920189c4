import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { TransferlabError } from '../../shared/errors.js';
import { FileAuditLog, type AuditEvent } from './audit.js';
import type { SharedDetections } from '../detect/detection.js';
import type { QueryDetector } from '../detect/detectors.js';
import { FileIdempotencyStore } from './idempotency-file.js';
import { RedisIdempotencyStore } from './idempotency-redis.js';
import type { IdempotencyStore } from './idempotency.js';
import { openLedger, type Budgets } from './ledger.js';
import { SharedDetectorState, detectorNamespace } from '../detect/shared-state.js';

/**
 * Where a victim keeps what must outlive a request: budgets and charges, Idempotency-Key records,
 * detector blocks, and the audit log. Two layouts:
 * - files (the default, one process): the ledger under its lock, the idempotency log beside it;
 * - a shared Redis store (`--store`, any number of replicas): budgets, idempotency records and
 *   blocks and the detectors' per-client state in Redis; each replica keeps its own fsync'd audit
 *   log, named by its replica id.
 */
export interface StateOptions {
  store?: string;
  replicaId?: string;
  ledger: string;
  auditLog?: string;
  idempotencyLog?: string;
  idempotencyTtlMs: number;
  /** Default audit log of a single victim; a replica's gets its id in the name. */
  defaultAuditLog: string;
}

export interface VictimState {
  budgets: Budgets;
  idempotency: IdempotencyStore;
  audit: FileAuditLog;
  /** Detection events in this process's audit log (replayed at start-up). */
  events: AuditEvent[];
  shared?: SharedDetections;
  /** With a shared store: the detectors' per-client state kept in it, for this detector set. */
  sharedDetectorState?: (detector: QueryDetector) => SharedDetectorState;
  /** Start-up banner lines (and warnings) describing where state lives. */
  banner: string[];
  warnings: string[];
  close(): Promise<void>;
}

/** runs/victim/ledger.jsonl → runs/victim/ledger.idempotency.jsonl: beside the ledger it belongs to, under its lock. */
export function idempotencyLogFor(ledgerPath: string): string {
  return ledgerPath.replace(/(\.jsonl)?$/, '.idempotency.jsonl');
}

const REPLICA_RULE = /^[A-Za-z0-9_.-]{1,64}$/;

/** runs/victim/audit.jsonl → runs/victim/audit-<replica>.jsonl */
export function replicaAuditLog(path: string, replica: string): string {
  return path.replace(/(\.jsonl)?$/, `-${replica}.jsonl`);
}

function openAudit(path: string, banner: string[]): ReturnType<typeof FileAuditLog.open> {
  const opened = FileAuditLog.open(path);
  banner.push(`audit log ${resolve(path)} (${opened.previous} earlier entries)`);
  if (opened.tornTail) banner.push(`audit log: its last line was torn by a crash (${opened.tornTail.bytes} bytes); kept as a torn_tail record`);
  return opened;
}

export async function openVictimState(o: StateOptions): Promise<VictimState> {
  const banner: string[] = [];
  const warnings: string[] = [];
  if (o.store === undefined) {
    if (o.replicaId !== undefined) throw new TransferlabError('invalid_config', '--replica-id names a replica of a shared store: it needs --store redis://…');
    // The ledger lock and the audit log come first: a second victim on the same ledger, or an
    // unwritable log, should fail in a second, not after the model has loaded or trained.
    const ledger = openLedger(o.ledger);
    const idempotencyPath = o.idempotencyLog ?? idempotencyLogFor(o.ledger);
    let remembered: ReturnType<typeof FileIdempotencyStore.open>;
    let opened: ReturnType<typeof FileAuditLog.open>;
    try {
      // Under the ledger's lock: the records only hold for the budgets in that ledger.
      remembered = FileIdempotencyStore.open(idempotencyPath, { ttlMs: o.idempotencyTtlMs });
      try {
        opened = openAudit(o.auditLog ?? o.defaultAuditLog, banner);
      } catch (e) {
        void remembered.store.close();
        throw e;
      }
    } catch (e) {
      ledger.close();
      throw e;
    }
    const charged = [...ledger.usage.values()].reduce((a, b) => a + b, 0);
    banner.push(`ledger ${resolve(o.ledger)} (${charged} images charged so far)`);
    banner.push(
      `idempotency records ${resolve(idempotencyPath)} (${remembered.restored} kept for ${o.idempotencyTtlMs / 3600_000} h` +
        (remembered.expired ? `, ${remembered.expired} expired dropped` : '') +
        ')',
    );
    return {
      budgets: ledger.book,
      idempotency: remembered.store,
      audit: opened.audit,
      events: opened.events,
      banner,
      warnings,
      close: async () => {
        opened.audit.close(); // flushes and fsyncs anything still pending
        await remembered.store.close();
        ledger.close();
      },
    };
  }
  const replica = o.replicaId ?? `${hostname()}-${process.pid}`;
  if (!REPLICA_RULE.test(replica)) throw new TransferlabError('invalid_config', `--replica-id must be 1-64 characters from A-Z a-z 0-9 _ . - (got ${JSON.stringify(replica.slice(0, 80))})`);
  // ioredis is loaded only with --store: a victim on files starts without it.
  const { RedisVictimStore, durabilityWarning } = await import('./redis-store.js');
  const store = await RedisVictimStore.open(o.store);
  try {
    const warning = durabilityWarning(await store.durability());
    if (warning) warnings.push(warning);
    const opened = openAudit(o.auditLog ?? replicaAuditLog(o.defaultAuditLog, replica), banner);
    banner.push(`shared store ${store.shown}, replica ${replica}: budgets, idempotency records (kept ${o.idempotencyTtlMs / 3600_000} h), detector state and blocks (${await store.totalCharged()} images charged so far)`);
    return {
      budgets: store,
      idempotency: new RedisIdempotencyStore(store.redis, o.idempotencyTtlMs),
      audit: opened.audit,
      events: opened.events,
      shared: store,
      sharedDetectorState: (detector) => new SharedDetectorState(store.redis, detectorNamespace(detector)),
      banner,
      warnings,
      close: async () => {
        opened.audit.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}
