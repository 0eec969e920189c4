import { rmSync } from 'node:fs';
import { tryPidLock } from '../../shared/pid-lock.js';
import { TransferlabError } from '../../shared/errors.js';
import { JsonlLog } from '../../shared/jsonl-log.js';
import type { IdempotencyRecordWrite } from './idempotency.js';
import type { Principal } from './keys.js';

/**
 * Query budgets: one image = one query. The ledger is an append-only JSON-lines file of charges
 * ({"time","key","images"}), fsync'd before an answer leaves and replayed at start-up, so budgets
 * survive restarts and crashes.
 *
 * Atomicity without locks: JavaScript runs one callback at a time, so `reserve` checks and reserves
 * in one synchronous step before the asynchronous model call. Concurrent requests therefore see each
 * other's reservations, and a batch that would exceed the budget is refused whole with nothing charged.
 */
export interface Reservation {
  readonly keyId: string;
  readonly images: number;
  settled: boolean;
  /** The shared store's name for this hold (victim/store/redis-store.ts); unused by the file ledger. */
  readonly id?: string;
}

/**
 * What the HTTP layer needs of budgets. The file ledger (BudgetBook, one victim process) answers
 * at once; the Redis store (victim/store/redis-store.ts, any number of replicas) asks Redis, atomically.
 */
export interface Budgets {
  /** Hold `images` of the caller's budget, or throw budget_exhausted (429) when they do not fit. */
  reserve(who: Principal, images: number): Reservation | Promise<Reservation>;
  /** Give a reservation back: nothing is charged. */
  release(r: Reservation): void | Promise<void>;
  /** Charge a reservation, durably; resolves to the caller's usage after this charge. */
  commit(r: Reservation): Promise<number>;
  /**
   * The same, and write the request's Idempotency-Key record in the same atomic step (the Redis
   * store): charged and recorded, or neither. Absent for the file ledger, whose records are written
   * beside the charge in the same turn (IdempotencyStore.finish).
   */
  commitWithRecord?(r: Reservation, record: IdempotencyRecordWrite): Promise<number>;
  used(keyId: string): number | Promise<number>;
}

export function budgetExhausted(images: number, used: number, limit: number, reserved: number): TransferlabError {
  const left = Math.max(0, limit - used - reserved);
  return new TransferlabError(
    'budget_exhausted',
    `this batch of ${images} image(s) would exceed the query budget (${used} of ${limit} used` +
      (reserved ? `, ${reserved} in flight` : '') +
      `, ${left} left); nothing was charged — send at most ${left} image(s)`,
    429,
  );
}

interface Account {
  used: number;
  reserved: number;
}

export interface LedgerRecord {
  time: string;
  key: string;
  images: number;
}

/** Where charges are made durable; the file-backed ledger in production, a stub in unit tests. */
export interface ChargeStore {
  append(record: LedgerRecord): Promise<void>;
}

export class BudgetBook implements Budgets {
  private readonly accounts = new Map<string, Account>();

  constructor(
    private readonly store: ChargeStore,
    initialUsage: ReadonlyMap<string, number> = new Map(),
    private readonly clock: () => Date = () => new Date(),
  ) {
    for (const [key, used] of initialUsage) this.accounts.set(key, { used, reserved: 0 });
  }

  private account(keyId: string): Account {
    let a = this.accounts.get(keyId);
    if (!a) {
      a = { used: 0, reserved: 0 };
      this.accounts.set(keyId, a);
    }
    return a;
  }

  used(keyId: string): number {
    return this.accounts.get(keyId)?.used ?? 0;
  }

  /** Check and hold `images` of the caller's budget, synchronously; throws budget_exhausted (429) when they do not fit. */
  reserve(who: Principal, images: number): Reservation {
    const a = this.account(who.id);
    if (who.limit !== null && a.used + a.reserved + images > who.limit) throw budgetExhausted(images, a.used, who.limit, a.reserved);
    a.reserved += images;
    return { keyId: who.id, images, settled: false };
  }

  /** Give a reservation back (the model call failed): nothing is charged. */
  release(r: Reservation): void {
    if (r.settled) return;
    r.settled = true;
    this.account(r.keyId).reserved -= r.images;
  }

  /**
   * Turn a reservation into a charge and make it durable; resolves to the caller's usage after this
   * charge. The in-memory move happens at once so concurrent checks stay exact; if the disk write
   * fails the charge stays counted (erring against the caller, never for them) and the error is thrown
   * so the answer is not sent.
   */
  async commit(r: Reservation): Promise<number> {
    if (r.settled) throw new TransferlabError('reservation_settled', 'reservation already settled', 500);
    r.settled = true;
    const a = this.account(r.keyId);
    a.reserved -= r.images;
    a.used += r.images;
    const usedAfter = a.used;
    try {
      await this.store.append({ time: this.clock().toISOString(), key: r.keyId, images: r.images });
    } catch (e) {
      throw new TransferlabError('ledger_unavailable', `the query ledger cannot be written (${(e as Error).message}); try again later`, 503);
    }
    return usedAfter;
  }
}

/** Sum charges per key from ledger records (tolerating nothing malformed: a bad record is an error). */
export function usageFromRecords(records: unknown[], path: string): Map<string, number> {
  const usage = new Map<string, number>();
  records.forEach((r, i) => {
    const rec = r as Partial<LedgerRecord> | null;
    if (!rec || typeof rec.key !== 'string' || !Number.isInteger(rec.images) || (rec.images as number) < 0) {
      throw new TransferlabError('ledger_corrupt', `${path} record ${i + 1} is not {"time","key","images"}; restore the file or move it aside`, 500);
    }
    usage.set(rec.key, (usage.get(rec.key) ?? 0) + (rec.images as number));
  });
  return usage;
}

export interface OpenLedger {
  book: BudgetBook;
  log: JsonlLog;
  usage: Map<string, number>;
  close(): void;
}

/**
 * Open (or create) the ledger file, replay it, and hold a lock so that no second victim process
 * charges the same budgets from a stale copy. A lock left by a dead process is taken over.
 */
export function openLedger(path: string, clock?: () => Date): OpenLedger {
  const lockPath = `${path}.lock`;
  takeLock(lockPath, path);
  try {
    const { log, records } = JsonlLog.open(path, { torn: 'drop' });
    const usage = usageFromRecords(records, path);
    const book = new BudgetBook(log, usage, clock);
    return {
      book,
      log,
      usage,
      close: () => {
        log.close();
        rmSync(lockPath, { force: true });
      },
    };
  } catch (e) {
    rmSync(lockPath, { force: true });
    throw e;
  }
}

function takeLock(lockPath: string, ledgerPath: string): void {
  let lock: ReturnType<typeof tryPidLock>;
  try {
    lock = tryPidLock(lockPath);
  } catch (e) {
    throw new TransferlabError('ledger_unwritable', `cannot create ${lockPath}: ${(e as Error).message}`, 500);
  }
  if (!lock.taken) {
    throw new TransferlabError(
      'ledger_locked',
      `the ledger ${ledgerPath} is in use by process ${lock.owner}; stop that victim or give this one its own --ledger ` +
        `(if no victim is running, delete ${lockPath})`,
    );
  }
}
