import type { z } from 'zod';
import { TransferlabError } from './errors.js';

/**
 * The one way settings read from a user's file (or flags) are checked: every object of a settings
 * schema is strict at every depth, and each problem is printed with its path — an unknown key with
 * the nearest known name, so `boundary: { imagez: 4 }` says "boundary.imagez: unknown setting; did
 * you mean images?" instead of running with the default boundary.
 */

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  element?: z.ZodType;
};
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Wrappers that hold one schema (defaults, optionals, pipes) are looked through. */
function unwrap(s: z.ZodType): z.ZodType {
  let d = defOf(s);
  while (d.innerType || (d.type === 'pipe' && d.in)) {
    s = (d.innerType ?? d.in) as z.ZodType;
    d = defOf(s);
  }
  return s;
}

/** The object schemas a path can lead to (a union may offer several). */
function objectsAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType[] {
  const s = unwrap(schema);
  const d = defOf(s);
  if (d.type === 'union' && d.options) return d.options.flatMap((o) => objectsAt(o, path));
  if (path.length === 0) return d.type === 'object' ? [s] : [];
  const [head, ...rest] = path;
  if (d.type === 'array' && d.element && typeof head === 'number') return objectsAt(d.element, rest);
  if (d.type === 'object' && d.shape && typeof head === 'string' && d.shape[head]) return objectsAt(d.shape[head], rest);
  return [];
}

/** Every object schema inside `schema`, with its path (array elements as `[]`): for checking strictness. */
export function objectSchemas(schema: z.ZodType, path = ''): { path: string; strict: boolean; keys: string[] }[] {
  const s = unwrap(schema);
  const d = defOf(s);
  if (d.type === 'union' && d.options) return d.options.flatMap((o) => objectSchemas(o, path));
  if (d.type === 'array' && d.element) return objectSchemas(d.element, `${path}[]`);
  if (d.type !== 'object' || !d.shape) return [];
  const here = { path: path || '(root)', strict: d.catchall !== undefined && defOf(d.catchall).type === 'never', keys: Object.keys(d.shape) };
  return [here, ...Object.entries(d.shape).flatMap(([k, v]) => objectSchemas(v, path ? `${path}.${k}` : k))];
}

/** Levenshtein distance: insertions, deletions and substitutions each cost 1. */
export function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/** The known name nearest to `key` (case ignored), when it is near enough to be a likely typo. */
export function nearestName(key: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = editDistance(key.toLowerCase(), name.toLowerCase());
    if (!best || d < best.d) best = { name, d };
  }
  return best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? best.name : undefined;
}

const pathText = (path: readonly PropertyKey[]) => path.map(String).join('.');

/** One line per problem: `path: message`, an unknown key with the nearest known name or the list of known ones. */
export function settingsIssues(schema: z.ZodType, error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    if (issue.code !== 'unrecognized_keys') return [`${pathText(issue.path) || '(settings)'}: ${issue.message}`];
    const known = [...new Set(objectsAt(schema, issue.path).flatMap((o) => Object.keys(defOf(o).shape ?? {})))];
    return issue.keys.map((key) => {
      const near = nearestName(key, known);
      const hint = near ? `did you mean ${near}?` : `known settings here: ${known.join(', ')}`;
      return `${pathText([...issue.path, key])}: unknown setting; ${hint}`;
    });
  });
}

/** Validate settings against their schema; every problem is listed in one `invalid_config` error. */
export function parseSettings<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = settingsIssues(schema, parsed.error).map((l) => `  - ${l}`);
  throw new TransferlabError('invalid_config', `invalid ${what}:\n${lines.join('\n')}`);
}
