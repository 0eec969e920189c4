import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { JournalReader, JournalWriter } from './journal.js';
import type { QueryDetector } from './detectors.js';
import type { Detection } from './prada.js';
import { GLOBAL_STORE } from './blacklight.js';

/**
 * The extraction detectors' per-client state, shared by every replica on one Redis store: an
 * attacker spreading its queries over n replicas must not give each detector only 1/n of the
 * evidence. Each client has a log in Redis, one entry per answered request: the detectors' journal
 * of it (victim/detect/journal.ts). To observe a request a replica takes the client's lock,
 * replays the entries other replicas appended since it last looked, observes the request on the
 * caught-up state and appends its journal — so the request is judged on exactly the state a single
 * process would hold after the same requests, in log order, and every replica agrees on that order.
 *
 * Bounded memory: the log is compacted. Once the journals appended since the last snapshot reach
 * half the size of that snapshot (and at least `compactBytes`), the replica appending writes a
 * snapshot of the client's whole state after its request instead of the request's journal, and the
 * log is emptied — in the same fenced script, so no entry can be lost to another replica appending or
 * compacting at the same time. The detectors' state is bounded (class sets, windows, rings), so the
 * snapshot is: a client's keys hold a snapshot, journals of less than half its size (or
 * `compactBytes`) and one request's (for MNIST with PRADA and Blacklight at their defaults: a 2.76 MB
 * snapshot, at most 4.7 MB of Redis memory as scripts/journal-memory.ts measures it). Snapshots cost
 * at most two bytes written per journal byte they replace. A replica whose progress is behind the
 * snapshot loads it and replays the entries after it.
 *
 * A detection is recorded in the same script that appends (or snapshots) the request that crossed
 * the threshold: a replica killed right after its append leaves the client flagged, never a state
 * that is flagged in every replica's detector but blocked by none.
 *
 * The lock serialises a client's requests across replicas (only that client's: others proceed in
 * parallel); it expires after LOCK_MS so a replica killed holding it blocks nobody for long, and
 * the append is fenced (it succeeds only if the log is still the length the replica caught up to),
 * so a replica whose lock expired mid-request cannot corrupt the order: it rebuilds from the log
 * and observes again. A lifted block resets the client's log and snapshot (its generation changes),
 * and every replica then starts that client afresh.
 *
 * Keys: tl:detlog:<settings>:<client> (list of journals after the snapshot), tl:detsnap:… (hash: base —
 * requests the snapshot covers, state — the snapshot, tail — bytes of journals since), tl:detgen:…
 * (generation), tl:detlock:…; <settings> is a hash of the detectors' settings, so replicas with other
 * settings never mix logs. Positions in the log are absolute: base + index in the list.
 *
 * Blacklight of scope `global` (alone: the CLI refuses it beside PRADA with a shared store) has one
 * state for all clients, so one log, under the client name GLOBAL_STORE: each entry is the sending
 * client's name and its journal, and the snapshot is the whole state. Every request then takes the
 * same lock: the price of one store that sees every key's queries.
 */
const LOCK_MS = 2_000;
const ATTEMPTS = 3;
/** The store's hash of detections, client → record (JSON), that every replica's block check reads. */
export const DETECTIONS_KEY = 'tl:detections';
/** The least journal bytes worth a snapshot (early on, when the snapshot is tiny). */
export const COMPACT_BYTES = 256 * 1024;

// KEYS: lock, log, gen, snap. ARGV: token, lock ms, entries already applied, generation they belong to.
// → nil when another replica holds the lock, else {generation, log length, first entry returned,
// journal bytes since the snapshot, snapshot bytes, the snapshot (empty unless the caller must load it), entries}.
const ACQUIRE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local gen = redis.call('GET', KEYS[3]) or '0'
local base = tonumber(redis.call('HGET', KEYS[4], 'base') or '0')
local from = tonumber(ARGV[3])
local state = ''
if gen ~= ARGV[4] or from < base then
  from = base
  state = redis.call('HGET', KEYS[4], 'state') or ''
end
return {gen, base + redis.call('LLEN', KEYS[2]), from, tonumber(redis.call('HGET', KEYS[4], 'tail') or '0'),
  redis.call('HSTRLEN', KEYS[4], 'state'), state, redis.call('LRANGE', KEYS[2], from - base, -1)}
`;
// KEYS: lock, log, gen, snap, detections. ARGV: token, generation, expected length, journal, snapshot
// ('' = none), client, detection record ('' = none). → 1 appended, 0 fenced out.
const APPEND = `
local ok = 0
if (redis.call('GET', KEYS[3]) or '0') == ARGV[2] and
    tonumber(redis.call('HGET', KEYS[4], 'base') or '0') + redis.call('LLEN', KEYS[2]) == tonumber(ARGV[3]) then
  if ARGV[5] == '' then
    redis.call('RPUSH', KEYS[2], ARGV[4])
    redis.call('HINCRBY', KEYS[4], 'tail', string.len(ARGV[4]))
  else
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[4], 'base', tonumber(ARGV[3]) + 1, 'tail', 0, 'state', ARGV[5])
  end
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[5], ARGV[6], ARGV[7]) end
  ok = 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return ok
`;
// KEYS: lock. ARGV: token.
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0`;
// KEYS: log, snap, gen.
const RESET = `redis.call('DEL', KEYS[1], KEYS[2]) return redis.call('INCR', KEYS[3])`;

type Acquired = [Buffer, number, number, number, number, Buffer, Buffer[]];

interface Scripts {
  tlDetAcquireBuffer(lock: string, log: string, gen: string, snap: string, token: string, ms: number, from: number, knownGen: string): Promise<Acquired | null>;
  tlDetAppend(lock: string, log: string, gen: string, snap: string, detections: string, token: string, generation: string, length: number, journal: Buffer, snapshot: Buffer | string, client: string, record: string): Promise<number>;
  tlDetUnlock(lock: string, token: string): Promise<number>;
  tlDetReset(log: string, snap: string, gen: string): Promise<number>;
}

/** Where this replica's detector stands in a client's log. */
interface Progress {
  gen: string;
  applied: number;
}

/**
 * The layout of a client's keys and scripts (2: a snapshot and the log after it). Part of the
 * namespace, so replicas of another version never append to, or compact, a log they would misread:
 * after an upgrade the detectors' evidence starts afresh (blocks, in the detections hash, stay).
 */
const LOG_FORMAT = 2;

/** Whose log a client's requests go to: its own, or the one global store's. */
export function logOf(detector: QueryDetector, client: string): string {
  return detector.settings.blacklight?.scope === 'global' ? GLOBAL_STORE : client;
}

/** A short name for the detectors' settings: logs are only replayable by identical detectors. */
export function detectorNamespace(detector: QueryDetector): string {
  return createHash('sha256').update(JSON.stringify({ format: LOG_FORMAT, kinds: detector.kinds, settings: detector.settings })).digest('hex').slice(0, 12);
}

export interface SharedDetectorOptions {
  /** The least journal bytes since the snapshot that make a replica write a new one (default COMPACT_BYTES). */
  compactBytes?: number;
  /** The hash of detections (client → record) that blocks are read from (DETECTIONS_KEY). */
  detectionsKey?: string;
}

export class SharedDetectorState {
  private readonly progress = new Map<string, Progress>();
  private readonly queue = new Map<string, Promise<unknown>>();
  private readonly scripts: Scripts;
  private readonly compactBytes: number;
  private readonly detectionsKey: string;

  constructor(
    redis: Redis,
    private readonly namespace: string,
    options: SharedDetectorOptions = {},
  ) {
    this.compactBytes = options.compactBytes ?? COMPACT_BYTES;
    this.detectionsKey = options.detectionsKey ?? DETECTIONS_KEY;
    redis.defineCommand('tlDetAcquire', { numberOfKeys: 4, lua: ACQUIRE });
    redis.defineCommand('tlDetAppend', { numberOfKeys: 5, lua: APPEND });
    redis.defineCommand('tlDetUnlock', { numberOfKeys: 1, lua: UNLOCK });
    redis.defineCommand('tlDetReset', { numberOfKeys: 3, lua: RESET });
    this.scripts = redis as unknown as Scripts;
  }

  private keys(client: string): { lock: string; log: string; gen: string; snap: string } {
    const tail = `${this.namespace}:${client}`;
    return { lock: `tl:detlock:${tail}`, log: `tl:detlog:${tail}`, gen: `tl:detgen:${tail}`, snap: `tl:detsnap:${tail}` };
  }

  /**
   * Observe a request on the client's shared state; the detection it made, if any (see the file
   * comment). `recordOf` makes the detection's record (JSON, as the detections hash holds it), stored
   * with the request's journal in one step.
   */
  observe(
    detector: QueryDetector,
    client: string,
    images: Float32Array,
    labels: ArrayLike<number>,
    recordOf?: (d: Detection) => string,
    flagged?: number[],
  ): Promise<Detection | null> {
    // One request of a log at a time in this process too: its Redis lock would serialise them
    // anyway, by polling.
    const log = logOf(detector, client);
    const prior = this.queue.get(log) ?? Promise.resolve();
    const mine = prior.catch(() => {}).then(() => this.observeLocked(detector, client, images, labels, recordOf, flagged));
    const settled = mine.catch(() => {});
    this.queue.set(log, settled);
    void settled.then(() => {
      if (this.queue.get(log) === settled) this.queue.delete(log);
    });
    return mine;
  }

  private async observeLocked(
    detector: QueryDetector,
    client: string,
    images: Float32Array,
    labels: ArrayLike<number>,
    recordOf?: (d: Detection) => string,
    flagged?: number[],
  ): Promise<Detection | null> {
    const global = logOf(detector, client) !== client;
    const owner = logOf(detector, client);
    const { lock, log, gen, snap } = this.keys(owner);
    for (let attempt = 1; ; attempt++) {
      let p = this.progress.get(owner);
      // Never seen here, or forgotten to make room: rebuilt from the snapshot and the log.
      if (!p || !detector.tracks(owner)) p = { gen: '', applied: 0 };
      const token = randomUUID();
      const got = await this.acquire(lock, log, gen, snap, token, p);
      let appended = false;
      try {
        if (got.generation !== p.gen || got.from !== p.applied) {
          // Starting afresh (a lifted block), or behind the snapshot: from the snapshot, if any.
          detector.forget(owner);
          if (got.snapshot.length > 0) detector.restore(owner, new JournalReader(got.snapshot));
          p = { gen: got.generation, applied: got.from };
        }
        for (const e of got.entries) {
          const r = new JournalReader(e);
          if (global) detector.replay(Buffer.from(r.bytes(r.u32())).toString(), r.chunk());
          else detector.replay(client, r);
        }
        p.applied = got.length;
        const journal = new JournalWriter();
        const verdicts: number[] = [];
        const found = detector.observe(client, images, labels, journal, verdicts);
        let entry = journal.finish();
        if (global) {
          const named = new JournalWriter();
          const name = Buffer.from(client);
          named.u32(name.length);
          named.bytes(name);
          named.chunk(journal);
          entry = named.finish();
        }
        let snapshot: Buffer | string = '';
        if (got.tailBytes + entry.length >= Math.max(this.compactBytes, got.snapshotBytes / 2)) {
          const w = new JournalWriter();
          detector.snapshot(owner, w);
          snapshot = w.finish();
        }
        const record = found && recordOf ? recordOf(found) : '';
        const keys = [lock, log, gen, snap, this.detectionsKey] as const;
        appended = (await this.scripts.tlDetAppend(...keys, token, p.gen, p.applied, entry, snapshot, client, record)) === 1;
        if (appended) {
          p.applied++;
          this.remember(detector, owner, p);
          flagged?.push(...verdicts);
          return found;
        }
      } catch (e) {
        await this.scripts.tlDetUnlock(lock, token).catch(() => 0);
        throw e;
      } finally {
        // Local state that is not the log's (a failed or fenced-out append) is rebuilt next time.
        if (!appended) {
          this.progress.delete(owner);
          detector.forget(owner);
        }
      }
      if (attempt >= ATTEMPTS) throw new Error(`the shared detector log of ${client} kept changing under its lock (${ATTEMPTS} attempts)`);
    }
  }

  private async acquire(lock: string, log: string, gen: string, snap: string, token: string, p: Progress) {
    const deadline = Date.now() + 3 * LOCK_MS;
    for (let wait = 1; ; wait = Math.min(wait * 2, 8)) {
      const got = await this.scripts.tlDetAcquireBuffer(lock, log, gen, snap, token, LOCK_MS, p.applied, p.gen);
      if (got) {
        const [generation, length, from, tailBytes, snapshotBytes, snapshot, entries] = got;
        return { generation: generation.toString(), length: Number(length), from: Number(from), tailBytes: Number(tailBytes), snapshotBytes: Number(snapshotBytes), snapshot, entries };
      }
      if (Date.now() > deadline) throw new Error(`the shared detector lock of a client stayed taken for ${3 * LOCK_MS} ms`);
      await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
    }
  }

  private remember(detector: QueryDetector, client: string, p: Progress): void {
    this.progress.set(client, p);
    // Progress of clients the detectors forgot is worthless (they replay from the start): keep it bounded.
    if (this.progress.size > 4096) for (const c of this.progress.keys()) if (!detector.tracks(c)) this.progress.delete(c);
  }

  /**
   * A lifted block: the client's shared state starts afresh on every replica. Not with a global store:
   * its log is everyone's evidence; the block (in the detections hash) is lifted, the counts stay.
   */
  async reset(client: string, detector?: QueryDetector): Promise<void> {
    if (detector && logOf(detector, client) !== client) return;
    const { log, snap, gen } = this.keys(client);
    await this.scripts.tlDetReset(log, snap, gen);
    this.progress.delete(client);
  }
}
