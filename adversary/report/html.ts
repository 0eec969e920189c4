import type { Rate } from '../../shared/metrics.js';
import type { SweepPoint } from '../campaign/transfer.js';

/**
 * Small HTML helpers shared by the run report and the comparison page. Every piece of text that
 * comes from a results file (run names, config values, captions) goes through `esc`: a run folder
 * is just files on disk, and a report must not execute whatever a crafted results.json holds.
 */
export function esc(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A rate as a percentage; null (empty denominator) is shown as a dash, never as 0 %. */
export function pct(rate: Rate | undefined, digits = 1): string {
  return rate === null || rate === undefined || !Number.isFinite(rate) ? '—' : `${(rate * 100).toFixed(digits)} %`;
}

export function num(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return Number.isInteger(value) ? value.toLocaleString('en-US') : Number(value.toPrecision(digits)).toString();
}

export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  if (s < 120) return `${s.toFixed(1)} s`;
  // Round first, so 179.6 s reads "3 min 0 s", not "2 min 60 s".
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/** A table from already-escaped cells (callers escape, so cells may hold markup such as <code>). */
export function table(head: string[], rows: string[][], cls = ''): string {
  const th = head.map((h) => `<th>${h}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table class="${esc(cls)}"><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Label/value rows (values already escaped), for summaries: no header row. */
export function kvTable(rows: [string, string][]): string {
  return `<table class="kv"><tbody>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join('\n')}</tbody></table>`;
}

/** A PNG as a data URI, so the page carries its pictures with it; undefined when the file is missing. */
export function pngDataUri(png: Uint8Array | undefined): string | undefined {
  if (!png) return undefined;
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

/**
 * The sweep point at ε = 0.3 (the seed paper's headline ε), or the nearest one the run measured.
 * Ties go to the smaller ε so the choice is stable.
 */
export function pointNear(points: SweepPoint[], mode: SweepPoint['mode'], epsilon = 0.3): SweepPoint | undefined {
  let best: SweepPoint | undefined;
  for (const p of points) {
    if (p.mode !== mode) continue;
    const d = Math.abs(p.epsilon - epsilon);
    const bd = best ? Math.abs(best.epsilon - epsilon) : Infinity;
    if (d < bd - 1e-12 || (Math.abs(d - bd) <= 1e-12 && best && p.epsilon < best.epsilon)) best = p;
  }
  return best;
}

/** The best targeted success over the sweep, with its ε; undefined when no targeted rate is known. */
export function bestTargeted(points: SweepPoint[]): { rate: number; epsilon: number } | undefined {
  let best: { rate: number; epsilon: number } | undefined;
  for (const p of points) {
    if (p.mode !== 'targeted' || p.targetedSuccessRate === null) continue;
    if (!best || p.targetedSuccessRate > best.rate) best = { rate: p.targetedSuccessRate, epsilon: p.epsilon };
  }
  return best;
}

/** Keys whose values must never be printed into a report or a CSV. */
export const SECRET_KEYS = new Set(['apiKey']);

export function redact(config: unknown): unknown {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return config;
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, SECRET_KEYS.has(k) ? '(set, not shown)' : redact(v)]));
}

const CSS = `
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6478; --line: #dde2ea; --accent: #2b5fad; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 10px; padding-top: 12px; border-top: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
.sub { color: var(--muted); margin: 0 0 16px; }
nav { font-size: 14px; margin: 10px 0 8px; } nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 12px 4px 0; text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.kv { width: 100%; max-width: 900px; } .kv th { width: 200px; font-weight: 500; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 160px; }
.card b { display: block; font-size: 22px; } .card span { color: var(--muted); font-size: 13px; }
figure { margin: 10px 0 18px; overflow-x: auto; } figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
figure.chart svg { display: block; max-width: none; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
img.pic { image-rendering: pixelated; border: 1px solid var(--line); max-width: 100%; height: auto; }
pre { background: #f3f5f8; border: 1px solid var(--line); padding: 12px; overflow-x: auto; font-size: 13px; }
.note { color: var(--muted); font-style: italic; }
code { font-size: 13px; }
`;

export function page(title: string, body: string): string {
  // No external resource at all (no CDN, no web font): the page must render offline and leak nothing.
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><main>
${body}
</main></body></html>
`;
}
