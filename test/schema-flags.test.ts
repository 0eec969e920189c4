/**
 * Flags generated from settings schemas: every campaign setting is a flag of `run` and every flag of
 * `run` is a setting (or one of the few command flags), the help shows the schema's defaults, and
 * parsing gives back only what was typed, so a config file's values are not overridden by defaults.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { z } from 'zod';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { campaignSchema } from '../adversary/campaign/config.js';
import { main as adversary } from '../adversary/cli.js';
import { buildConfig, runOptions, whiteboxOptions } from '../adversary/cli/settings.js';
import { queryAttackOptions } from '../adversary/query/cli.js';
import { queryAttackSchema, resolveQueryAttackConfig } from '../adversary/query/run.js';
import { flagName, inputFromFlags, schemaOptions } from '../shared/schema-flags.js';

afterEach(() => vi.restoreAllMocks());

/** The --help text of one adversary command, as a user sees it. */
async function helpOf(command: string): Promise<string> {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
    throw new Error(`exit ${code}`);
  }) as never);
  await adversary([command, '--help']).catch(() => undefined);
  vi.restoreAllMocks();
  return lines.join('\n');
}
// An option line: the flag, then the padding before its help (a wrapped help line never has both).
const flagsIn = (help: string) => new Set([...help.matchAll(/^\s+--([a-z][a-z-]*)\s{2,}/gm)].map((m) => m[1]));
const COMMAND_FLAGS = ['config', 'backend', 'resume', 'help', 'version'];

describe('flags generated from a schema', () => {
  const schema = z.strictObject({
    seedSize: z.number().int().default(150).describe('seed set size'),
    format: z.enum(['uint8', 'float32']).default('uint8').describe('wire format'),
    epochs: z.union([z.number(), z.array(z.number())]).default([6, 2]).describe('epochs per round'),
    substitute: z.union([z.string(), z.array(z.string())]).default('paper-cnn').describe('architecture'),
    target: z.union([z.enum(['random', 'next']), z.number().int()]).default('random').describe('target class'),
    threads: z.union([z.literal(1), z.literal(2)]).default(1).describe('threads'),
    snapshots: z.array(z.number()).default([]).describe('earlier rounds'),
    targeted: z.boolean().default(true).describe('also targeted'),
    out: z.string().optional().describe('run folder'),
    nested: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  });
  const options = schemaOptions(schema.shape);
  const parse = (argv: string[]) => inputFromFlags(schema.shape, yargs(argv).options(options).strict().parseSync());

  it('names, types, help lines and defaults come from the schema; mappings are left out', () => {
    expect(Object.keys(options)).toEqual(['seed-size', 'format', 'epochs', 'substitute', 'target', 'threads', 'snapshots', 'targeted', 'out']);
    expect(options['seed-size']).toEqual({ type: 'number', describe: 'seed set size', defaultDescription: '150' });
    expect(options.format).toMatchObject({ type: 'string', describe: 'wire format (uint8 | float32)', defaultDescription: 'uint8' });
    expect(options.epochs).toMatchObject({ type: 'array', defaultDescription: '6 2' });
    expect(options.target.describe).toBe('target class (random | next | a number)');
    expect(options.threads).toMatchObject({ type: 'number', describe: 'threads (1 | 2)' });
    expect(options.snapshots.defaultDescription).toBe('none');
    expect(options.out).toEqual({ type: 'string', describe: 'run folder' });
    // No yargs default: a flag not typed stays absent.
    for (const o of Object.values(options)) expect(o).not.toHaveProperty('default');
  });

  it('gives back only the flags typed, converted to the schema input', () => {
    expect(parse([])).toEqual({});
    expect(parse(['--seed-size', '20', '--epochs', '4', '--substitute', 'lenet', 'paper-cnn', '--target', '7', '--no-targeted'])).toEqual({
      seedSize: 20,
      epochs: 4,
      substitute: ['lenet', 'paper-cnn'],
      target: 7,
      targeted: false,
    });
    expect(parse(['--epochs', '6', '2', '--target', 'next', '--snapshots', '3'])).toEqual({ epochs: [6, 2], target: 'next', snapshots: [3] });
  });

  it('refuses a field without a help line or that no flag can carry', () => {
    expect(() => schemaOptions(z.object({ rounds: z.number() }).shape)).toThrow(/rounds has no help line/);
    expect(() => schemaOptions(schema.shape, { keys: ['nested'] })).toThrow(/mapping/);
    expect(() => schemaOptions(schema.shape, { keys: ['bogus'] })).toThrow(/no setting bogus/);
    expect(() => schemaOptions(z.object({ odd: z.union([z.string(), z.array(z.number())]).describe('odd') }).shape)).toThrow(/no flag for a zod union/);
  });
});

describe('the campaign command line', () => {
  it('every campaign setting is a flag of `run`, and every flag of `run` a setting or a command flag', async () => {
    const settings = Object.keys(campaignSchema.shape).map(flagName).sort();
    const help = flagsIn(await helpOf('run'));
    expect([...help].filter((f) => !COMMAND_FLAGS.includes(f)).sort()).toEqual(settings);
    expect(Object.keys(runOptions).filter((f) => !COMMAND_FLAGS.includes(f)).sort()).toEqual(settings);
    expect(await helpOf('run')).toMatch(/--epsilons[\s\S]*\[default: 0\.05 0\.1 0\.15 0\.2 0\.25 0\.3 0\.4 0\.5\]/);
  });

  it('whitebox shows its own defaults; query-attack flags are query settings', async () => {
    expect(whiteboxOptions['ti-kernel'].defaultDescription).toBe('0');
    expect(runOptions['ti-kernel'].defaultDescription).toBe('5');
    expect(await helpOf('whitebox')).not.toMatch(/--victim|--rounds/);
    const query = Object.keys(queryAttackOptions).filter((f) => !['resume', 'out', 'backend'].includes(f));
    const keys = Object.keys(queryAttackSchema.shape).map(flagName);
    expect(query.filter((f) => !keys.includes(f))).toEqual([]);
    // every query-attack setting is a flag, seed-size and dataset included (a small image folder needs a small seed set)
    expect(keys.filter((k) => !query.includes(k))).toEqual([]);
    expect(query).toEqual(expect.arrayContaining(['seed-size', 'dataset']));
    expect(queryAttackOptions['queries-per-image'].defaultDescription).toBe('1000');
    const argv = yargs(['--attack', 'hsja', '--norm', 'l2', '--queries-per-image', '50', '--epsilons', '0.1', '--targeted']).options(queryAttackOptions).strict().parseSync();
    const given = inputFromFlags(queryAttackSchema.shape, argv);
    expect(given).toEqual({ attack: 'hsja', norm: 'l2', queriesPerImage: 50, epsilons: [0.1], targeted: true });
    expect(resolveQueryAttackConfig(given)).toMatchObject({ ...given, images: 100, seed: 1, victim: 'http://127.0.0.1:8080' });
  });

  it("a config file's values hold unless a flag is typed", () => {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-flags-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'rounds: 2\nseed: 9\nepochs: [3, 1]\nboundary:\n  images: 7\n');
    const argv = yargs(['--config', file, '--seed', '3', '--no-boundary']).options(runOptions).strict().parseSync();
    const c = buildConfig(argv);
    expect(c).toMatchObject({ rounds: 2, seed: 3, epochs: [3, 1], attack: 'fgsm' });
    expect(c.boundary).toMatchObject({ enabled: false, images: 7 });
  });
});
