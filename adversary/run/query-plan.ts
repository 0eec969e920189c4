/**
 * What a run will pay the victim, by purpose, computed from its settings before the first paid
 * query: exact where the count does not depend on the victim's answers, an upper bound ("at most")
 * where it does (first-flip scans stop at a flip, RayS may finish early, the answer cache serves
 * repeats). The run prints it, and refuses to start when the key's known budget cannot cover it.
 */
import { TransferlabError } from '../../shared/errors.js';
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

function total(parts: PlanPart[], purpose: QueryPurpose): PurposePlan {
  const mine = parts.filter((p) => p.purpose === purpose);
  return { planned: mine.reduce((s, p) => s + p.queries, 0), atMost: mine.some((p) => p.atMost) };
}

export function planOf(parts: PlanPart[]): QueryPlan {
  const kept = parts.filter((p) => p.queries > 0);
  return { attack: total(kept, 'attack'), measurement: total(kept, 'measurement'), parts: kept };
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
