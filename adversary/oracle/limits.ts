/**
 * What the client holds itself to, whatever the target: a budget of paid images for the run folder
 * (`--budget N`: a call that would go over is refused before anything is sent, so a run stops cleanly
 * and resumes from its cache with a larger budget), and a pace for a production endpoint (at most
 * `concurrency` requests in flight, request starts at least 1/rps seconds apart). The oracle core
 * applies them to every batch it sends (core.ts).
 */
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';

export const oracleLimitsShape = {
  budget: z.number().int().min(0).optional().describe('most images this run folder may pay for in all, resumed sessions included; a query that would go over stops the run before it is sent'),
  concurrency: z.number().int().min(1).max(64).default(1).describe('most requests in flight at once'),
  rps: z.number().positive().optional().describe('most requests started per second (default: no limit)'),
};
export const oracleLimitsSchema = z.strictObject(oracleLimitsShape);
export type OracleLimits = z.input<typeof oracleLimitsSchema>;
export const LIMIT_KEYS = Object.keys(oracleLimitsShape) as (keyof OracleLimits)[];

/** The limits among a resumed command's flags: they belong to the session, so they may change on resuming (a larger --budget). */
export function sessionLimits(flags: Readonly<Record<string, unknown>>): Partial<OracleLimits> {
  return Object.fromEntries(LIMIT_KEYS.filter((k) => flags[k] !== undefined).map((k) => [k, flags[k]]));
}

/** The refusal of a call that would take the run folder past --budget; nothing of it was sent. */
export function clientBudgetError(needed: number, paid: number, budget: number): TransferlabError {
  const left = Math.max(0, budget - paid);
  return new TransferlabError(
    'budget_exhausted',
    `client-side budget: the next query needs ${needed} new image(s) but --budget ${budget} leaves ${left} ` +
      `(this run folder has paid for ${paid}); nothing was sent. Resume with a larger --budget: answers already paid for are not paid again`,
    429,
  );
}

/**
 * Runs requests at most `concurrency` at a time, each start at least 1000/rps ms after the one before
 * (no burst: any window of T seconds holds at most ⌊T·rps⌋ + 1 starts).
 */
export class RequestPacer {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private lastStart = -Infinity;
  /** Starts pass through this chain one by one, each waiting 1/rps after the one before actually began. */
  private gate: Promise<void> = Promise.resolve();

  constructor(
    readonly concurrency = 1,
    readonly rps?: number,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TransferlabError('bad_limit', `concurrency must be a whole number ≥ 1, got ${concurrency}`);
    if (rps !== undefined && !(rps > 0)) throw new TransferlabError('bad_limit', `rps must be > 0, got ${rps}`);
  }

  private paced(): Promise<void> {
    const interval = 1000 / (this.rps as number);
    const turn = this.gate.then(async () => {
      const wait = this.lastStart + interval - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // A timer may fire a little early: wait out the rest, so no two starts are ever closer than 1/rps.
      while (performance.now() < this.lastStart + interval) await new Promise((r) => setTimeout(r, 1));
      this.lastStart = performance.now();
    });
    this.gate = turn;
    return turn;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency) await new Promise<void>((go) => this.waiting.push(go));
    else this.active++;
    try {
      if (this.rps !== undefined) await this.paced();
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, so `active` never drops below what is running.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * Calls `work` on every item, at most `limit` at a time, in order of the items; after the first
 * failure no new item starts, the ones running finish (their answers are paid for and kept), and the
 * first error is thrown.
 */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        await work(items[i], i);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.error;
}
