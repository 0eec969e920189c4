import type { Rate } from '../../shared/metrics.js';
import { WHITEBOX_ATTACKS, type ModelEvaluation, type WhiteboxAttack, type WhiteboxPoint } from './evaluate.js';

const fmt = (v: Rate | undefined) => (v === null || v === undefined ? '–' : v.toFixed(4));

type LabelSettings = { pgdSteps: number; restarts: number; marginRestarts: number; apgdSteps?: number; apgdTargets?: number; squareQueries?: number; raysQueries?: number };

export function attackLabel(attack: WhiteboxAttack, o: LabelSettings): string {
  switch (attack) {
    case 'apgd-ce':
      return `APGD-CE-${o.apgdSteps ?? 100}`;
    case 'apgd-t':
      return `APGD-T-${o.apgdSteps ?? 100} × ${o.apgdTargets ?? 9} targets`;
    case 'square':
      return `Square ${o.squareQueries ?? 5000} queries`;
    case 'rays':
      return `RayS ${o.raysQueries ?? 2000} queries`;
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

/** An attack's figure: its accuracy, or in a cascade what it fooled among the images it ran on. */
export function describePoint(p: WhiteboxPoint): string {
  if (p.accuracy === null && p.ranOn !== undefined) return `fooled ${p.fooled ?? 0} of the ${p.ranOn} images still standing`;
  const shares = p.shares ? ` (broken first by: ${Object.entries(p.shares).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'})` : '';
  return `accuracy ${fmt(p.accuracy)}${shares}`;
}

/** One row per measure, one column per model. */
export function evaluationRows(evals: ModelEvaluation[], epsilons: number[], o: LabelSettings = { pgdSteps: 50, restarts: 10, marginRestarts: 1 }): string[][] {
  const rows: string[][] = [['measure', ...evals.map((e) => e.model)]];
  rows.push(['architecture', ...evals.map((e) => e.arch)]);
  rows.push(['defence', ...evals.map((e) => describeDefence(e.defence))]);
  rows.push(['training time (s)', ...evals.map((e) => (e.trainSeconds === null ? '–' : e.trainSeconds.toFixed(1)))]);
  rows.push(['clean accuracy (10,000 test)', ...evals.map((e) => fmt(e.cleanAccuracy))]);
  rows.push(['clean accuracy (attacked sample)', ...evals.map((e) => fmt(e.cleanAccuracyOnSample))]);
  for (const attack of WHITEBOX_ATTACKS) {
    for (const eps of epsilons) {
      const points = evals.map((e) => e.whitebox.find((p) => p.attack === attack && p.epsilon === eps));
      if (points.every((p) => !p)) continue;
      const cell = (p: WhiteboxPoint | undefined) => (!p ? '–' : p.accuracy === null && p.ranOn !== undefined ? `+${p.fooled ?? 0} of ${p.ranOn}` : fmt(p.accuracy));
      rows.push([`white-box ${attackLabel(attack, o)} accuracy ε ${eps}`, ...points.map(cell)]);
      if (attack === 'worst') {
        rows.push([`worst case ε ${eps}: broken first by`, ...points.map((p) => Object.entries(p?.shares ?? {}).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join('; ') || '–')]);
      }
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
      d.beta !== undefined ? `β ${String(d.beta)}` : '',
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
