/**
 * What a run will pay the victim, by purpose, computed from its settings before the first paid
 * query: exact where the count does not depend on the victim's answers, an upper bound ("at most")
 * where it does (first-flip scans stop at a flip, RayS may finish early, the answer cache serves
 * repeats). The run prints it, and refuses to start when the key's known budget cannot cover it.
 */
import { TransferlabError } from '../../shared/errors.js';
import type { CampaignConfig } from '../campaign/config.js';
import type { CountingOracle } from '../oracle/core.js';
import type { QueryPurpose } from '../oracle/oracle.js';

export interface PlanPart {
  purpose: QueryPurpose;
  what: string;
  queries: number;
  /** True when `queries` is an upper bound. */
  atMost: boolean;
}

export interface PurposePlan {
  planned: number;
  atMost: boolean;
}

export interface QueryPlan {
  attack: PurposePlan;
  measurement: PurposePlan;
  parts: PlanPart[];
}

/** Coarse first-flip scan to ε 1 in steps of 16/255 (16 probes), then 4 bisection probes: shared/boundary.ts. */
const FLIP_PROBES_PER_IMAGE = 16 + 4;
/** The built-in datasets' test parts hold 10,000 images; a folder's count is checked when it is loaded. */
const TEST_IMAGES = 10_000;

function total(parts: PlanPart[], purpose: QueryPurpose): PurposePlan {
  const mine = parts.filter((p) => p.purpose === purpose);
  return { planned: mine.reduce((s, p) => s + p.queries, 0), atMost: mine.some((p) => p.atMost) };
}

export function planOf(parts: PlanPart[]): QueryPlan {
  const kept = parts.filter((p) => p.queries > 0);
  return { attack: total(kept, 'attack'), measurement: total(kept, 'measurement'), parts: kept };
}

/** Images the victim labels for the substitute: the seed set, then each round's augmentation but the last's. */
export function attackImages(c: Pick<CampaignConfig, 'seedSize' | 'rounds' | 'reservoir'>): number {
  let size = c.seedSize;
  for (let round = 0; round < c.rounds - 1; round++) size += c.reservoir === undefined ? size : Math.min(size, c.reservoir);
  return size;
}

export function campaignPlan(c: CampaignConfig): QueryPlan {
  const evalCount = Math.min(c.evalSize, TEST_IMAGES - c.seedSize);
  const b = c.boundary;
  const on = b.enabled;
  const flips = on ? Math.min(b.images, evalCount) : 0;
  const rays = on ? Math.min(b.rays.images, evalCount) : 0;
  const modes = c.targeted ? 2 : 1;
  return planOf([
    { purpose: 'attack', what: 'seed set and augmentation rounds', queries: attackImages(c), atMost: false },
    { purpose: c.craftLabel === 'oracle' ? 'attack' : 'measurement', what: 'clean evaluation labels', queries: evalCount, atMost: false },
    { purpose: 'measurement', what: 'transfer sweep', queries: modes * c.epsilons.length * evalCount, atMost: false },
    { purpose: 'measurement', what: 'boundary first flips', queries: flips * FLIP_PROBES_PER_IMAGE, atMost: true },
    { purpose: 'measurement', what: 'nearest boundary (RayS)', queries: rays * b.rays.queries, atMost: true },
    { purpose: 'measurement', what: 'boundary maps', queries: on ? b.maps * b.grid * b.grid : 0, atMost: false },
  ]);
}

const grouped = (n: number) => n.toLocaleString('en-US');

function describePurpose(plan: QueryPlan, purpose: QueryPurpose): string {
  const p = plan[purpose];
  const parts = plan.parts.filter((x) => x.purpose === purpose).map((x) => `${x.what} ${x.atMost ? '≤ ' : ''}${grouped(x.queries)}`);
  return `${purpose} ${p.atMost ? 'at most ' : ''}${grouped(p.planned)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

/** One line per purpose, e.g. "planned queries: attack 4,800 (…); measurement at most 45,356 (…)". */
export function describePlan(plan: QueryPlan): string {
  return `planned victim queries: ${describePurpose(plan, 'attack')}; ${describePurpose(plan, 'measurement')}`;
}

/** What the key may still spend, as the victim tells it (GET /v1/budget); null when unknown or unlimited. */
export interface BudgetCheck {
  known: boolean;
  used: number | null;
  limit: number | null;
  remaining: number | null;
  /** Planned queries not yet paid in this run folder (what a resume replays from its cache is free). */
  needed: number;
}

/**
 * Print the plan and check it against the key's budget before anything is paid. A known budget that
 * cannot cover what is still to pay stops the run, unless allowPartial; an unknown budget (a victim
 * without GET /v1/budget) is a warning.
 */
export async function checkPlan(plan: QueryPlan, oracle: CountingOracle, allowPartial: boolean, log: (line: string) => void): Promise<BudgetCheck> {
  log(describePlan(plan));
  const prior = oracle.priorCounts();
  const needed = Math.max(0, plan.attack.planned - prior.attack) + Math.max(0, plan.measurement.planned - prior.measurement);
  const budget = await oracle.budget();
  if (budget === null) {
    log(`warning: the victim does not say this key's budget (no GET /v1/budget); the run may be cut short when it runs out`);
    return { known: false, used: null, limit: null, remaining: null, needed };
  }
  if (budget.limit === null) return { known: true, used: budget.used, limit: null, remaining: null, needed };
  const remaining = Math.max(0, budget.limit - budget.used);
  const check = { known: true, used: budget.used, limit: budget.limit, remaining, needed };
  const atMost = plan.attack.atMost || plan.measurement.atMost ? 'at most ' : '';
  if (needed <= remaining) {
    log(`budget: ${grouped(remaining)} of ${grouped(budget.limit)} queries left for this key; this run needs ${atMost}${grouped(needed)}`);
    return check;
  }
  const short = `this run needs ${atMost}${grouped(needed)} more victim queries but the key has ${grouped(remaining)} left (${grouped(budget.used)} of ${grouped(budget.limit)} used)`;
  if (!allowPartial) {
    throw new TransferlabError('budget_insufficient', `${short}; nothing was paid. Ask for a larger budget, shrink the run (evalSize, epsilons, boundary), or pass --allow-partial to run anyway and record what the budget cuts short as partial`, 402);
  }
  log(`warning: ${short}; --allow-partial: a measure cut short will be recorded as partial`);
  return check;
}
