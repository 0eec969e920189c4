import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { JournalReader, JournalWriter } from './detector-journal.js';
import type { QueryDetector } from './detectors.js';
import type { Detection } from './prada.js';

/**
 * The extraction detectors' per-client state, shared by every replica on one Redis store: an
 * attacker spreading its queries over n replicas must not give each detector only 1/n of the
 * evidence. Each client has a log in Redis, one entry per answered request: the detectors' journal
 * of it (victim/detector-journal.ts). To observe a request a replica takes the client's lock,
 * replays the entries other replicas appended since it last looked, observes the request on the
 * caught-up state and appends its journal — so the request is judged on exactly the state a single
 * process would hold after the same requests, in log order, and every replica agrees on that order.
 *
 * The lock serialises a client's requests across replicas (only that client's: others proceed in
 * parallel); it expires after LOCK_MS so a replica killed holding it blocks nobody for long, and
 * the append is fenced (it succeeds only if the log is still the length the replica caught up to),
 * so a replica whose lock expired mid-request cannot corrupt the order: it rebuilds from the log
 * and observes again. A lifted block resets the client's log (its generation changes), and every
 * replica then starts that client afresh.
 *
 * Keys: tl:detlog:<settings>:<client> (list of journals), tl:detgen:… (generation), tl:detlock:…;
 * <settings> is a hash of the detectors' settings, so replicas with other settings never mix logs.
 */
const LOCK_MS = 2_000;
const ATTEMPTS = 3;

// KEYS: lock, log, gen. ARGV: token, lock ms, entries already applied, generation they belong to.
// → nil when another replica holds the lock, else {generation, log length, entries to apply}.
const ACQUIRE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local gen = redis.call('GET', KEYS[3]) or '0'
local from = tonumber(ARGV[3])
if gen ~= ARGV[4] then from = 0 end
return {gen, redis.call('LLEN', KEYS[2]), redis.call('LRANGE', KEYS[2], from, -1)}
`;
// KEYS: lock, log, gen. ARGV: token, generation, expected length, journal. → 1 appended, 0 fenced out.
const APPEND = `
local ok = 0
if (redis.call('GET', KEYS[3]) or '0') == ARGV[2] and redis.call('LLEN', KEYS[2]) == tonumber(ARGV[3]) then
  redis.call('RPUSH', KEYS[2], ARGV[4])
  ok = 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return ok
`;
// KEYS: lock. ARGV: token.
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0`;
// KEYS: log, gen.
const RESET = `redis.call('DEL', KEYS[1]) return redis.call('INCR', KEYS[2])`;

interface Scripts {
  tlDetAcquireBuffer(lock: string, log: string, gen: string, token: string, ms: number, from: number, knownGen: string): Promise<[Buffer, number, Buffer[]] | null>;
  tlDetAppend(lock: string, log: string, gen: string, token: string, generation: string, length: number, journal: Buffer): Promise<number>;
  tlDetUnlock(lock: string, token: string): Promise<number>;
  tlDetReset(log: string, gen: string): Promise<number>;
}

/** Where this replica's detector stands in a client's log. */
interface Progress {
  gen: string;
  applied: number;
}

/** A short name for the detectors' settings: logs are only replayable by identical detectors. */
export function detectorNamespace(detector: QueryDetector): string {
  return createHash('sha256').update(JSON.stringify({ kinds: detector.kinds, settings: detector.settings })).digest('hex').slice(0, 12);
}

export class SharedDetectorState {
  private readonly progress = new Map<string, Progress>();
  private readonly queue = new Map<string, Promise<unknown>>();
  private readonly scripts: Scripts;

  constructor(
    redis: Redis,
    private readonly namespace: string,
  ) {
    redis.defineCommand('tlDetAcquire', { numberOfKeys: 3, lua: ACQUIRE });
    redis.defineCommand('tlDetAppend', { numberOfKeys: 3, lua: APPEND });
    redis.defineCommand('tlDetUnlock', { numberOfKeys: 1, lua: UNLOCK });
    redis.defineCommand('tlDetReset', { numberOfKeys: 2, lua: RESET });
    this.scripts = redis as unknown as Scripts;
  }

  private keys(client: string): [string, string, string] {
    const tail = `${this.namespace}:${client}`;
    return [`tl:detlock:${tail}`, `tl:detlog:${tail}`, `tl:detgen:${tail}`];
  }

  /** Observe a request on the client's shared state; the detection it made, if any (see the file comment). */
  observe(detector: QueryDetector, client: string, images: Float32Array, labels: ArrayLike<number>): Promise<Detection | null> {
    // One request of a client at a time in this process too: its Redis lock would serialise them
    // anyway, by polling.
    const prior = this.queue.get(client) ?? Promise.resolve();
    const mine = prior.catch(() => {}).then(() => this.observeLocked(detector, client, images, labels));
    const settled = mine.catch(() => {});
    this.queue.set(client, settled);
    void settled.then(() => {
      if (this.queue.get(client) === settled) this.queue.delete(client);
    });
    return mine;
  }

  private async observeLocked(detector: QueryDetector, client: string, images: Float32Array, labels: ArrayLike<number>): Promise<Detection | null> {
    const [lock, log, gen] = this.keys(client);
    for (let attempt = 1; ; attempt++) {
      let p = this.progress.get(client);
      if (!p || !detector.tracks(client)) {
        // Never seen here, or forgotten to make room: rebuilt from the whole log.
        detector.forget(client);
        p = { gen: '', applied: 0 };
      }
      const token = randomUUID();
      const [generation, length, entries] = await this.acquire(lock, log, gen, token, p);
      let appended = false;
      try {
        if (generation !== p.gen) {
          if (p.gen !== '') detector.forget(client); // the block was lifted: the client starts afresh
          p = { gen: generation, applied: 0 };
        }
        for (const e of entries) detector.replay(client, new JournalReader(e));
        p.applied = length;
        const journal = new JournalWriter();
        const found = detector.observe(client, images, labels, journal);
        appended = (await this.scripts.tlDetAppend(lock, log, gen, token, p.gen, p.applied, journal.finish())) === 1;
        if (appended) {
          p.applied++;
          this.remember(detector, client, p);
          return found;
        }
      } catch (e) {
        await this.scripts.tlDetUnlock(lock, token).catch(() => 0);
        throw e;
      } finally {
        // Local state that is not the log's (a failed or fenced-out append) is rebuilt next time.
        if (!appended) {
          this.progress.delete(client);
          detector.forget(client);
        }
      }
      if (attempt >= ATTEMPTS) throw new Error(`the shared detector log of ${client} kept changing under its lock (${ATTEMPTS} attempts)`);
    }
  }

  private async acquire(lock: string, log: string, gen: string, token: string, p: Progress): Promise<[string, number, Buffer[]]> {
    const deadline = Date.now() + 3 * LOCK_MS;
    for (let wait = 1; ; wait = Math.min(wait * 2, 8)) {
      const got = await this.scripts.tlDetAcquireBuffer(lock, log, gen, token, LOCK_MS, p.applied, p.gen);
      if (got) return [got[0].toString(), Number(got[1]), got[2]];
      if (Date.now() > deadline) throw new Error(`the shared detector lock of a client stayed taken for ${3 * LOCK_MS} ms`);
      await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
    }
  }

  private remember(detector: QueryDetector, client: string, p: Progress): void {
    this.progress.set(client, p);
    // Progress of clients the detectors forgot is worthless (they replay from the start): keep it bounded.
    if (this.progress.size > 4096) for (const c of this.progress.keys()) if (!detector.tracks(c)) this.progress.delete(c);
  }

  /** A lifted block: the client's shared state starts afresh on every replica. */
  async reset(client: string): Promise<void> {
    const [, log, gen] = this.keys(client);
    await this.scripts.tlDetReset(log, gen);
    this.progress.delete(client);
  }
}
