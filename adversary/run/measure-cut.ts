/**
 * A measure the key's budget cuts short. Without allowPartial the run stops with an error naming the
 * measure, how far it got and why, and no figure of it is written: a figure over fewer images than it
 * says would be silently wrong. With allowPartial the measure is kept, computed over the images
 * actually measured, and listed in results.json's `partial` so no reader takes it as whole.
 */
import { TransferlabError } from '../../shared/errors.js';

export type { PartialMeasure } from '../../shared/protocol/index.js';
import type { PartialMeasure } from '../../shared/protocol/index.js';

/** The victim refused a batch because the key's budget is spent (nothing of that batch was charged). */
export function isBudgetRefusal(e: unknown): e is TransferlabError {
  return e instanceof TransferlabError && e.code === 'budget_exhausted';
}

/** The error that stops a run whose measure was cut: what, how far, why, and what was (not) kept. */
export function measureCut(what: string, measured: number, planned: number, cause: string, partialPossible = true): TransferlabError {
  return new TransferlabError(
    'measurement_cut',
    `the ${what} was cut short by the key's budget after ${measured} of ${planned} images (${cause}); ` +
      'no figure of it was recorded. Resume with more budget (the answers already paid for are not paid again)' +
      (partialPossible ? ', or rerun with --allow-partial to record partial figures labelled as such' : ''),
    429,
  );
}

/** A budget refusal inside a measure: rethrown as the measure's cut, or (allowPartial) returned as its partial record. */
export function onCut(e: unknown, allowPartial: boolean, measure: string, what: string, measured: number, planned: number): PartialMeasure {
  if (!isBudgetRefusal(e)) throw e;
  if (!allowPartial) throw measureCut(what, measured, planned, e.message.split('\n')[0]);
  return { measure, unit: 'images', measured, planned, reason: 'budget_exhausted' };
}
