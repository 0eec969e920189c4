/**
 * Command-line flags generated from a zod object schema, so that each setting is declared once: its
 * type, default and help line live in the schema, and the flag (camelCase key → --kebab-case), the
 * "[default: …]" of --help and the conversion back to the schema's input all follow from it.
 *
 * Validation stays with the schema: a flag carries no yargs `choices` or coercion beyond its type, so a
 * bad value is reported by the schema together with every other problem, before any work starts.
 */
import type { Options } from 'yargs';
import type { z } from 'zod';

/** What a schema field holds, as far as a command line can say it. */
export interface FieldKind {
  type: 'number' | 'string' | 'boolean' | 'array' | 'object';
  /** Enum or literal values the field accepts. */
  choices?: (string | number)[];
  /** Arrays: the type of one element. */
  element?: 'number' | 'string';
  /** One value or a list of them (`--epochs 4` or `--epochs 6 2`): a single value stays a scalar. */
  scalarOrList?: boolean;
  /** A word or a number (`--target-class next`, `--target-class 7`): digits become a number. */
  numeric?: boolean;
}

type Field = z.core.$ZodType;
interface Def {
  type: string;
  innerType?: Field;
  defaultValue?: unknown;
  entries?: Record<string, string | number>;
  values?: unknown[];
  options?: Field[];
  element?: Field;
  in?: Field;
}
const defOf = (t: Field): Def => (t as unknown as { _zod: { def: Def } })._zod.def;

/** camelCase key → kebab-case flag name. */
export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The field without its default/optional wrappers, and its default when it has one. */
export function unwrapField(t: Field): { inner: Field; hasDefault: boolean; defaultValue?: unknown } {
  let inner = t;
  let found: { value: unknown } | undefined;
  for (;;) {
    const def = defOf(inner);
    if ((def.type === 'default' || def.type === 'prefault') && def.innerType) {
      found ??= { value: def.defaultValue };
      inner = def.innerType;
    } else if ((def.type === 'optional' || def.type === 'nullable' || def.type === 'readonly') && def.innerType) {
      inner = def.innerType;
    } else if (def.type === 'pipe' && def.in) {
      inner = def.in;
    } else break;
  }
  return found ? { inner, hasDefault: true, defaultValue: found.value } : { inner, hasDefault: false };
}

/** The command-line kind of a field; throws for a type no flag can carry (a programming error). */
export function kindOf(t: Field): FieldKind {
  const { inner } = unwrapField(t);
  const def = defOf(inner);
  switch (def.type) {
    case 'number':
    case 'string':
    case 'boolean':
    case 'object':
      return { type: def.type };
    case 'enum':
      return { type: 'string', choices: Object.values(def.entries ?? {}) };
    case 'literal': {
      const values = (def.values ?? []) as (string | number)[];
      return { type: values.every((v) => typeof v === 'number') ? 'number' : 'string', choices: values };
    }
    case 'array': {
      const element = kindOf(def.element as Field);
      if (element.type !== 'number' && element.type !== 'string') throw new Error(`no flag for an array of ${element.type}`);
      return { type: 'array', element: element.type };
    }
    case 'union': {
      const kinds = (def.options ?? []).map(kindOf);
      const list = kinds.find((k) => k.type === 'array');
      const scalar = kinds.find((k) => k !== list);
      if (list && kinds.length === 2 && scalar?.type === list.element) return { ...list, scalarOrList: true };
      if (kinds.every((k) => k.choices)) {
        const choices = kinds.flatMap((k) => k.choices ?? []);
        return { type: choices.every((v) => typeof v === 'number') ? 'number' : 'string', choices };
      }
      if (kinds.some((k) => k.type === 'number') && kinds.some((k) => k.type === 'string')) {
        return { type: 'string', numeric: true, choices: kinds.flatMap((k) => k.choices ?? []) };
      }
      break;
    }
  }
  throw new Error(`no flag for a zod ${def.type}`);
}

/** A default as one would type it: a list space-separated, an empty list "none". */
export function defaultLabel(value: unknown): string {
  if (Array.isArray(value)) return value.length ? value.join(' ') : 'none';
  return String(value);
}

type Shape = Record<string, Field>;
export interface FlagChoice {
  /** The keys to give flags, in this order; every key of the shape but objects when absent. */
  keys?: readonly string[];
  /** Help lines by key, over the fields' own `.describe()` text. */
  help?: Readonly<Record<string, string>>;
  /** Defaults by key that differ from the schema's for this command (shown only; set them in the input). */
  defaults?: Readonly<Record<string, unknown>>;
}

const describedBy = (t: Field): string | undefined => (t as unknown as { description?: string }).description;

/** yargs options for the fields of a schema: type, help line, "[default: …]", nothing more. */
export function schemaOptions(shape: Shape, choice: FlagChoice = {}): Record<string, Options> {
  const keys = choice.keys ?? Object.keys(shape).filter((k) => kindOf(shape[k]).type !== 'object');
  const options: Record<string, Options> = {};
  for (const key of keys) {
    const field = shape[key];
    if (!field) throw new Error(`no setting ${key} in the schema`);
    const kind = kindOf(field);
    if (kind.type === 'object') throw new Error(`${key} is a mapping: give it an explicit flag`);
    const help = choice.help?.[key] ?? describedBy(field);
    if (!help) throw new Error(`setting ${key} has no help line: give it .describe()`);
    const { hasDefault, defaultValue } = unwrapField(field);
    const shown = choice.defaults && key in choice.defaults ? { hasDefault: true, defaultValue: choice.defaults[key] } : { hasDefault, defaultValue };
    options[flagName(key)] = {
      type: kind.type as Exclude<FieldKind['type'], 'object'>,
      describe: kind.choices?.length ? `${help} (${kind.choices.join(' | ')}${kind.numeric ? ' | a number' : ''})` : help,
      ...(shown.hasDefault ? { defaultDescription: defaultLabel(shown.defaultValue) } : {}),
    };
  }
  return options;
}

function fromFlag(kind: FieldKind, v: unknown): unknown {
  if (kind.type === 'array') {
    const list = (Array.isArray(v) ? v : [v]).map((x) => (kind.element === 'number' ? Number(x) : String(x)));
    return kind.scalarOrList && list.length === 1 ? list[0] : list;
  }
  if (kind.type === 'number') return Number(v);
  if (kind.numeric && /^\d+$/.test(String(v))) return Number(v);
  return v;
}

/**
 * Parsed argv → the schema's input: only the flags the user gave, so a config file's values are not
 * overridden by defaults. Mappings (objects) are left to the caller.
 */
export function inputFromFlags(shape: Shape, argv: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(shape)) {
    const kind = kindOf(field);
    const v = argv[flagName(key)];
    if (kind.type !== 'object' && v !== undefined) input[key] = fromFlag(kind, v);
  }
  return input;
}
