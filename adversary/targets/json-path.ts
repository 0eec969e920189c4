/**
 * A small JSONPath reader for where a JSON API puts its answer: `$`, `.name`, `['name']`, `[N]`
 * (negative counts from the end), `[*]` and `.*`. A wildcard fans out, so `$.predictions[*].label`
 * is one value per image; nothing else of JSONPath (filters, slices, recursive descent) is needed to
 * point at a batch's labels or scores, and an unknown form is an error rather than a silent miss.
 */
import { TransferlabError } from '../../shared/errors.js';

export type PathStep = { kind: 'key'; key: string } | { kind: 'index'; index: number } | { kind: 'all' };

const NAME = /^[A-Za-z_$][\w$-]*/;

/** The steps of a path, or an error naming the position where it stops making sense. */
export function parseJsonPath(path: string): PathStep[] {
  if (!path.startsWith('$')) throw new TransferlabError('bad_json_path', `JSON path "${path}" must start with $`);
  const steps: PathStep[] = [];
  let i = 1;
  const fail = (why: string) => new TransferlabError('bad_json_path', `JSON path "${path}": ${why} at character ${i + 1}`);
  while (i < path.length) {
    const rest = path.slice(i);
    if (rest.startsWith('.*')) {
      steps.push({ kind: 'all' });
      i += 2;
    } else if (rest.startsWith('.')) {
      const m = NAME.exec(rest.slice(1));
      if (!m) throw fail('expected a name after "."');
      steps.push({ kind: 'key', key: m[0] });
      i += 1 + m[0].length;
    } else if (rest.startsWith('[*]')) {
      steps.push({ kind: 'all' });
      i += 3;
    } else if (rest.startsWith('[')) {
      const m = /^\[(-?\d+|'([^']*)'|"([^"]*)")\]/.exec(rest);
      if (!m) throw fail('expected [N], [*], [\'name\'] or ["name"]');
      steps.push(m[2] !== undefined || m[3] !== undefined ? { kind: 'key', key: m[2] ?? m[3] } : { kind: 'index', index: Number(m[1]) });
      i += m[0].length;
    } else throw fail(`unexpected "${rest[0]}"`);
  }
  return steps;
}

/** Every value the path reaches in `doc` (a wildcard over an array gives its items in order); [] when it reaches none. */
export function readJsonPath(doc: unknown, path: string | PathStep[]): unknown[] {
  const steps = typeof path === 'string' ? parseJsonPath(path) : path;
  let here: unknown[] = [doc];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of here) {
      if (step.kind === 'all') {
        if (Array.isArray(v)) next.push(...(v as unknown[]));
        else if (v !== null && typeof v === 'object') next.push(...Object.values(v));
      } else if (step.kind === 'index') {
        if (Array.isArray(v)) {
          const at = step.index < 0 ? v.length + step.index : step.index;
          if (at >= 0 && at < v.length) next.push(v[at]);
        }
      } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, step.key)) {
        next.push((v as Record<string, unknown>)[step.key]);
      }
    }
    here = next;
  }
  return here;
}

/** True when the path can reach more than one value (it holds a wildcard). */
export const fansOut = (path: string): boolean => parseJsonPath(path).some((s) => s.kind === 'all');
