/**
 * Soak test of the victim, not part of `npm test`: a steady load for N minutes, then whether the
 * service held up.
 *
 *   npm run soak -- --minutes 20 [--victim URL --key KEY --ledger FILE --pid PID] [--json FILE]
 *
 * 8 clients (scripts/soak-traffic.ts) send batches of 1–100 real MNIST test images, uint8 and JSON,
 * with some malformed requests and some idempotent retries mixed in. Per window (a minute by
 * default): requests, images, p50/p99 latency of answered requests, the victim's RSS (VmRSS from
 * /proc), errors and the expected 4xx. Goals: after the warm-up (2 minutes) RSS and p99 stay within
 * ±10 % of their median, no errors, and the ledger charged the key exactly the images answered
 * (retries not charged twice). Without --victim it starts its own victim on loopback.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { isMain, runMain } from '../shared/cli.js';
import { backendOption, runningVictimOption } from '../shared/cli-options.js';
import { quantile } from '../shared/statistics.js';
import { loadMnist } from '../shared/datasets/index.js';
import { createRng } from '../shared/random.js';
import { SERVE_DEFAULTS } from '../victim/serve-options.js';
import { usageFromRecords } from '../victim/store/ledger.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { nextRequest, type Outcome, type TrafficMix } from './soak-traffic.js';

export interface SoakOptions {
  minutes: number;
  clients?: number;
  /** Length of one reported window (60 s; tests use less). */
  windowSeconds?: number;
  warmupMinutes?: number;
  /** A running victim; else one is started on `model`. */
  victim?: { url: string; key: string; keyId?: string; ledger?: string; pid?: number };
  model?: string;
  backend?: string;
  mix?: Partial<TrafficMix>;
  seed?: number;
  log?: (line: string) => void;
}

export interface SoakWindow {
  window: number;
  requests: number;
  images: number;
  p50Ms: number | null;
  p99Ms: number | null;
  rssMiB: number | null;
  errors: number;
  expected4xx: number;
  retries: number;
}

export interface SoakReport {
  minutes: number;
  clients: number;
  windows: SoakWindow[];
  answeredImages: number;
  ledgerImages: number | null;
  errors: { count: number; examples: string[] };
  goals: { rssFlat: boolean | null; p99Flat: boolean | null; noErrors: boolean; ledgerExact: boolean | null };
}

const KEY = 'soak-secret-0123456789abcdef';

function rssMiB(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : null;
  } catch {
    return null;
  }
}

function ledgerImages(path: string | undefined, key: string): number | null {
  if (!path) return null;
  if (!existsSync(path)) return 0; // nothing charged yet
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
  return usageFromRecords(lines.map((l) => JSON.parse(l) as unknown), path).get(key) ?? 0;
}

/** Every value within ±10 % of the values' median; null when there is nothing after the warm-up. */
function flat(values: (number | null)[]): boolean | null {
  const v = values.filter((x): x is number => x !== null);
  if (v.length === 0) return null;
  const mid = quantile(v, 0.5)!;
  return v.every((x) => Math.abs(x - mid) <= 0.1 * mid);
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? console.log;
  const clients = opts.clients ?? 8;
  const windowMs = (opts.windowSeconds ?? 60) * 1000;
  const mix: TrafficMix = { malformed: 0.05, retry: 0.1, ...opts.mix };
  const pixels = loadMnist('test').pixels;
  let own: { victim: VictimProcess; dir: string } | undefined;
  let target = opts.victim;
  if (!target) {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-soak-'));
    writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: [{ id: 'soak', key: KEY }] }));
    let pid = 0;
    const ledger = join(dir, 'ledger.jsonl');
    const victim = await spawnVictim({
      args: ['--model', opts.model ?? SERVE_DEFAULTS.model, '--port', '0', '--no-train', '--keys', join(dir, 'keys.json'), '--ledger', ledger, '--audit-log', join(dir, 'audit.jsonl'),
        '--rate-limit', '0', '--log-level', 'warn', ...(opts.backend ? ['--backend', opts.backend] : [])],
      timeoutMs: 120_000,
      onLine: (line) => void (/^pid (\d+)$/.test(line) && (pid = Number(line.slice(4)))),
    });
    own = { victim, dir };
    target = { url: victim.url, key: KEY, keyId: 'soak', ledger, pid };
    log(`victim ${victim.url} (pid ${pid}), ledger ${ledger}`);
  }
  const { url, key, pid } = target;
  const keyId = target.keyId ?? 'soak';
  const before = ledgerImages(target.ledger, keyId);

  const windowCount = Math.max(1, Math.ceil((opts.minutes * 60_000) / windowMs));
  const outcomes: Outcome[][] = Array.from({ length: windowCount }, () => []);
  const rss: number[][] = Array.from({ length: windowCount }, () => []);
  const started = performance.now();
  const deadline = started + opts.minutes * 60_000;
  const windowOf = () => Math.min(windowCount - 1, Math.floor((performance.now() - started) / windowMs));
  const sampler = setInterval(() => {
    const r = rssMiB(pid);
    if (r !== null) rss[windowOf()].push(r);
  }, 1000);
  let printed = 0;
  const summarise = (w: number): SoakWindow => {
    const got = outcomes[w];
    const latencies = got.filter((o) => o.kind === 'answered').map((o) => o.ms);
    const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
    return {
      window: w + 1,
      requests: got.length,
      images: got.reduce((s, o) => s + (o.kind === 'answered' ? o.images : 0), 0),
      p50Ms: round(quantile(latencies, 0.5)),
      p99Ms: round(quantile(latencies, 0.99)),
      rssMiB: rss[w].length ? round(rss[w].reduce((a, b) => a + b, 0) / rss[w].length) : null,
      errors: got.filter((o) => o.kind === 'error').length,
      expected4xx: got.filter((o) => o.kind === 'refused').length,
      retries: got.filter((o) => o.kind === 'retried').length,
    };
  };
  const header = 'window  requests  images  p50 ms  p99 ms  RSS MiB  errors  expected 4xx  retries';
  const row = (s: SoakWindow) =>
    [s.window, s.requests, s.images, s.p50Ms ?? '-', s.p99Ms ?? '-', s.rssMiB ?? '-', s.errors, s.expected4xx, s.retries]
      .map((v, i) => String(v).padStart(header.split(/\s{2,}/)[i].length))
      .join('  ');
  log(header);
  const printer = setInterval(() => {
    while (printed < windowOf()) log(row(summarise(printed++)));
  }, 1000);

  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const rng = createRng((opts.seed ?? 1) * 1000 + c);
        while (performance.now() < deadline) {
          const w = windowOf();
          outcomes[w].push(...(await nextRequest(url, key, pixels, rng, mix)));
        }
      }),
    );
  } finally {
    clearInterval(sampler);
    clearInterval(printer);
  }
  const windows = outcomes.map((_, w) => summarise(w));
  while (printed < windowCount) log(row(windows[printed++]));

  const all = outcomes.flat();
  const answeredImages = all.reduce((s, o) => s + (o.kind === 'answered' ? o.images : 0), 0);
  const errors = all.filter((o): o is Extract<Outcome, { kind: 'error' }> => o.kind === 'error');
  const after = ledgerImages(target.ledger, keyId);
  const ledger = after === null || before === null ? null : after - before;
  if (own) {
    await own.victim.stop();
    rmSync(own.dir, { recursive: true, force: true });
  }
  const settled = windows.slice(Math.ceil(((opts.warmupMinutes ?? 2) * 60_000) / windowMs));
  const report: SoakReport = {
    minutes: opts.minutes,
    clients,
    windows,
    answeredImages,
    ledgerImages: ledger,
    errors: { count: errors.length, examples: [...new Set(errors.map((e) => e.why))].slice(0, 10) },
    goals: {
      rssFlat: flat(settled.map((w) => w.rssMiB)),
      p99Flat: flat(settled.map((w) => w.p99Ms)),
      noErrors: errors.length === 0,
      ledgerExact: ledger === null ? null : ledger === answeredImages,
    },
  };
  const say = (v: boolean | null, what: string) => `${v === null ? 'n/a ' : v ? 'PASS' : 'FAIL'}  ${what}`;
  log(say(report.goals.rssFlat, `RSS within ±10 % after the ${opts.warmupMinutes ?? 2}-minute warm-up${report.goals.rssFlat === null ? ' (no window after it, or no pid)' : ''}`));
  log(say(report.goals.p99Flat, `p99 within ±10 % after the warm-up${report.goals.p99Flat === null ? ' (no window after it)' : ''}`));
  log(say(report.goals.noErrors, `0 errors (${errors.length}${errors.length ? `: ${report.errors.examples.join('; ')}` : ''})`));
  log(say(report.goals.ledgerExact, `ledger charged ${ledger ?? '?'} images, clients got answers for ${answeredImages}${ledger === null ? ' (pass --ledger FILE)' : ''}`));
  return report;
}

async function main(argv: string[]): Promise<number> {
  const args = await yargs(argv)
    .scriptName('npm run soak --')
    .usage('$0 [options]\n\nHold a steady mixed load on the victim for N minutes and report latency, memory, errors and ledger accuracy per minute.')
    .options({
      minutes: { type: 'number', default: 20, describe: 'how long to hold the load' },
      clients: { type: 'number', default: 8, describe: 'concurrent clients' },
      'window-seconds': { type: 'number', default: 60, describe: 'length of one reported window' },
      'warmup-minutes': { type: 'number', default: 2, describe: 'minutes left out of the flatness goals' },
      victim: runningVictimOption('start one on loopback'),
      key: { type: 'string', describe: 'with --victim: the API key to use' },
      'key-id': { type: 'string', describe: 'with --victim: the key\'s id (as the ledger records it) [default: soak]' },
      ledger: { type: 'string', describe: 'with --victim: its ledger file, to check ledger == answered' },
      pid: { type: 'number', describe: 'with --victim: its pid, for RSS' },
      model: { type: 'string', default: SERVE_DEFAULTS.model, describe: 'model of the victim started here' },
      backend: { ...backendOption, describe: `the victim started here: ${backendOption.describe}` },
      seed: { type: 'number', default: 1 },
      json: { type: 'string', describe: 'write the report as JSON here' },
    })
    .strict()
    .parseAsync();
  if (!(args.minutes > 0 && args.minutes <= 24 * 60)) throw new Error(`--minutes must be in (0, 1440] (got ${args.minutes})`);
  if (args.victim && !/^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\/?$/.test(args.victim)) throw new Error(`--victim must be a loopback URL such as http://127.0.0.1:8080 (got ${args.victim})`);
  if (args.victim && !args.key) throw new Error('--victim needs --key');
  const report = await runSoak({
    minutes: args.minutes,
    clients: args.clients,
    warmupMinutes: args['warmup-minutes'],
    windowSeconds: args['window-seconds'],
    victim: args.victim ? { url: args.victim.replace(/\/$/, ''), key: args.key!, keyId: args['key-id'], ledger: args.ledger, pid: args.pid } : undefined,
    model: args.model,
    backend: args.backend,
    seed: args.seed,
  });
  if (args.json) writeFileSync(args.json, JSON.stringify({ measuredAt: new Date().toISOString(), node: process.version, ...report }, null, 2) + '\n');
  return report.goals.noErrors && report.goals.ledgerExact !== false && report.goals.rssFlat !== false && report.goals.p99Flat !== false ? 0 : 1;
}

if (isMain(import.meta.url)) runMain(main);
