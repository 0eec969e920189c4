import type { Rate } from '../../shared/metrics.js';
import { WHITEBOX_ATTACKS, type ModelEvaluation, type WhiteboxAttack } from './evaluate.js';

const fmt = (v: Rate | undefined) => (v === null || v === undefined ? '–' : v.toFixed(4));

export function attackLabel(attack: WhiteboxAttack, o: { pgdSteps: number; restarts: number; marginRestarts: number }): string {
  switch (attack) {
    case 'fgsm':
      return 'FGSM';
    case 'pgd':
      return `PGD-${o.pgdSteps}${o.restarts > 1 ? ` × ${o.restarts} restarts` : ''}`;
    case 'pgd-margin':
      return `PGD-${o.pgdSteps} CW margin${o.marginRestarts > 1 ? ` × ${o.marginRestarts} restarts` : ''}`;
    default:
      return 'worst case of all';
  }
}

/** One row per measure, one column per model. */
export function evaluationRows(evals: ModelEvaluation[], epsilons: number[], o = { pgdSteps: 50, restarts: 10, marginRestarts: 1 }): string[][] {
  const rows: string[][] = [['measure', ...evals.map((e) => e.model)]];
  rows.push(['architecture', ...evals.map((e) => e.arch)]);
  rows.push(['defence', ...evals.map((e) => describeDefence(e.defence))]);
  rows.push(['training time (s)', ...evals.map((e) => (e.trainSeconds === null ? '–' : e.trainSeconds.toFixed(1)))]);
  rows.push(['clean accuracy (10,000 test)', ...evals.map((e) => fmt(e.cleanAccuracy))]);
  rows.push(['clean accuracy (attacked sample)', ...evals.map((e) => fmt(e.cleanAccuracyOnSample))]);
  for (const attack of WHITEBOX_ATTACKS) {
    for (const eps of epsilons) {
      rows.push([`white-box ${attackLabel(attack, o)} accuracy ε ${eps}`, ...evals.map((e) => fmt(e.whitebox.find((p) => p.attack === attack && p.epsilon === eps)?.accuracy))]);
    }
  }
  if (evals.some((e) => e.campaign)) {
    for (const eps of epsilons) {
      rows.push([`black-box transfer rate ε ${eps}`, ...evals.map((e) => fmt(e.campaign?.points.find((p) => p.epsilon === eps)?.transferRate))]);
    }
    rows.push(['campaign attack queries', ...evals.map((e) => (e.campaign ? String(e.campaign.attackQueries) : '–'))]);
    rows.push(['substitute agreement', ...evals.map((e) => fmt(e.campaign?.agreement))]);
    // A campaign the budget cut (allowPartial) lacks the ε after the cut: say so beside its figures.
    if (evals.some((e) => e.campaign?.partial?.length)) {
      rows.push(['campaign PARTIAL (measured/planned)', ...evals.map((e) => e.campaign?.partial?.map((p) => `${p.measure} ${p.measured}/${p.planned}`).join('; ') || '–')]);
    }
  }
  rows.push(['masking check', ...evals.map((e) => (e.masking.suspected ? 'gradient masking suspected' : 'no sign of masking'))]);
  return rows;
}

export function describeDefence(defence: unknown): string {
  if (!defence || typeof defence !== 'object') return 'none';
  const d = defence as Record<string, unknown>;
  return (
    [
      d.attack,
      d.epsilon !== undefined ? `ε ${String(d.epsilon)}` : '',
      d.alpha !== undefined ? `α ${Number(d.alpha).toFixed(3)}` : '',
      d.steps !== undefined ? `K ${String(d.steps)}` : '',
      d.mix !== undefined && d.mix !== 1 ? `mix ${String(d.mix)}` : '',
      d.keepClean ? '+ clean' : '',
    ]
      .filter(Boolean)
      .join(' ') || String(d.kind ?? 'yes')
  );
}

export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

export function toCsv(rows: string[][]): string {
  const cell = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return rows.map((r) => r.map(cell).join(',')).join('\n') + '\n';
}
