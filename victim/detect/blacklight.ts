/**
 * Blacklight (Li et al., USENIX Security 2022): detects query-based attacks by the near-duplicates
 * they must send. Every query gets a content fingerprint: its pixels quantised to coarse levels
 * (floor(v·255 / step)), windows of `window` consecutive pixels of the flattened image taken every
 * `stride` pixels, each window hashed, and the `hashes` largest hash values kept. A query whose
 * fingerprint shares at least `threshold` hashes with one earlier query of the same client is a
 * match; a client is flagged after `minMatches` matches. A decision-based attack walks the
 * boundary in tiny steps (bisections, block flips, gradient-estimation probes at radius δ), so
 * its probes quantise to nearly the same windows; natural images do not.
 *
 * Departures from the paper, for a service that must stay bounded: windows whose quantised pixels
 * are all equal (blank background) are not hashed — every MNIST image has them, they say nothing
 * about the query; hashes are 32-bit FNV-1a (collisions among a client's ≤ history × hashes
 * entries cost at most a spurious shared hash, not a match); and each client keeps only its last
 * `history` fingerprints, in a ring, with an index from hash to the queries holding it.
 * Memory: at most history × hashes index entries per client (2,000 × 50 by default, a few MB), and
 * `maxClients` clients (least recently active unflagged one forgotten first). Time per query: one
 * pass over the pixels to hash, and `hashes` index look-ups.
 *
 * Scope: `key` (the default) keeps one hash store per client, so an attacker with many keys gives
 * each store a share of its probes; `global` keeps one store for all clients, as the paper's design
 * does — a query matching an earlier one of any client counts, and the match is charged to the
 * client that sent it (its own match count and flag, bounded by `maxClients`).
 */
import { TransferlabError } from '../../shared/errors.js';
import { readFlag, writeFlag, type JournalReader, type JournalWriter } from './journal.js';
import type { ClientSummary, Detection } from './prada.js';
import { ClientCounts, ClientPrints, ENTRY_BYTES } from './blacklight-store.js';

export interface BlacklightOptions {
  /** Quantisation step on the 0..255 scale (default 50, as in the paper). */
  step: number;
  /** Pixels per window of the flattened image (default 56: two MNIST rows, so a window sees strokes in two directions). */
  window: number;
  /** Pixels between window starts (default 1). */
  stride: number;
  /** Hashes kept per fingerprint: the largest values (default 50). */
  hashes: number;
  /** Shared hashes that make two queries a match (default 30). */
  threshold: number;
  /** Matched queries that flag a client (default 3). */
  minMatches: number;
  /** Fingerprints kept per client (default 2,000). */
  history: number;
  /** Clients tracked at once (default 100). */
  maxClients: number;
  /** One hash store per client (`key`) or one for all (`global`). */
  scope: BlacklightScope;
}

export const BLACKLIGHT_SCOPES = ['key', 'global'] as const;
export type BlacklightScope = (typeof BLACKLIGHT_SCOPES)[number];
/** The name of the one hash store of scope `global` (never a client: key ids and anonymous@ip have no `*`). */
export const GLOBAL_STORE = '*';

export const BLACKLIGHT_DEFAULTS: BlacklightOptions = { step: 50, window: 56, stride: 1, hashes: 50, threshold: 30, minMatches: 3, history: 2000, maxClients: 100, scope: 'key' };

export class BlacklightDetector {
  readonly options: BlacklightOptions;
  private readonly clients = new Map<string, ClientPrints>();
  /** Scope `global`: each client's counts (the store is clients' GLOBAL_STORE entry). */
  private readonly counts = new Map<string, ClientCounts>();
  private readonly flags = new Map<string, Detection>();

  constructor(options: Partial<BlacklightOptions> = {}) {
    this.options = { ...BLACKLIGHT_DEFAULTS, ...options };
    const o = this.options;
    const problems: string[] = [];
    const int = (name: Exclude<keyof BlacklightOptions, 'scope'>, lo: number, hi: number) => {
      if (!Number.isInteger(o[name]) || o[name] < lo || o[name] > hi) problems.push(`${name} must be an integer in ${lo}..${hi} (got ${o[name]})`);
    };
    int('step', 1, 255);
    int('window', 1, 4096);
    int('stride', 1, 4096);
    int('hashes', 1, 1000);
    int('threshold', 1, o.hashes);
    int('minMatches', 1, 1_000_000);
    int('history', 1, 100_000);
    int('maxClients', 1, 1_000_000);
    if (!BLACKLIGHT_SCOPES.includes(o.scope)) problems.push(`scope must be one of ${BLACKLIGHT_SCOPES.join(', ')} (got ${String(o.scope)})`);
    if (problems.length) throw new TransferlabError('invalid_config', `Blacklight detector: ${problems.join('; ')}`);
  }

  /** The fingerprint of one image (pixels in [0, 1]): the `hashes` largest window hashes, distinct. */
  fingerprint(image: Float32Array, offset: number, pixels: number): Uint32Array {
    const { step, window, stride, hashes } = this.options;
    const q = new Uint8Array(pixels);
    for (let p = 0; p < pixels; p++) q[p] = Math.floor(Math.round(Math.min(1, Math.max(0, image[offset + p])) * 255) / step);
    const seen = new Set<number>();
    for (let s = 0; s + window <= pixels; s += stride) {
      let h = 0x811c9dc5;
      let flat = true;
      for (let p = s; p < s + window; p++) {
        h = Math.imul(h ^ q[p], 0x01000193);
        if (q[p] !== q[s]) flat = false;
      }
      if (!flat) seen.add(h >>> 0);
    }
    const sorted = Uint32Array.from(seen).sort();
    return sorted.slice(Math.max(0, sorted.length - hashes));
  }

  private get global(): boolean {
    return this.options.scope === 'global';
  }

  /** The entry of `id` in an LRU map of at most maxClients (the least recent unflagged one forgotten first). */
  private recent<T extends ClientCounts>(map: Map<string, T>, id: string, make: () => T): T {
    let c = map.get(id);
    if (c) map.delete(id);
    else {
      if (map.size >= this.options.maxClients) {
        const old = [...map.values()].find((x) => !this.flags.has(x.id)) ?? map.values().next().value;
        if (old) map.delete(old.id);
      }
      c = make();
    }
    map.set(id, c);
    return c;
  }

  private client(id: string): ClientPrints {
    return this.recent(this.clients, id, () => new ClientPrints(id));
  }

  /** The hash store a client's query is matched against and joins, and where its matches are counted. */
  private storeOf(clientId: string): { store: ClientPrints; counts: ClientCounts } {
    if (!this.global) {
      const c = this.client(clientId);
      return { store: c, counts: c };
    }
    const store = this.clients.get(GLOBAL_STORE) ?? this.client(GLOBAL_STORE);
    return { store, counts: this.recent(this.counts, clientId, () => new ClientCounts(clientId)) };
  }

  /**
   * Feed one request's images (count × pixels, [0, 1]); returns the detection if this request flagged
   * the client. With a journal, the fingerprints are written to it (for the replicas sharing a store).
   * `flagged` receives the index of each image that matched an earlier query (Blacklight's verdict
   * on one query: an action `reject` refuses the request holding it).
   */
  observe(clientId: string, images: Float32Array, labels: ArrayLike<number>, journal?: JournalWriter, flagged?: number[]): Detection | null {
    const c = this.storeOf(clientId);
    const count = labels.length;
    const pixels = count === 0 ? 0 : images.length / count;
    let detection: Detection | null = null;
    journal?.u32(count);
    for (let i = 0; i < count; i++) {
      const print = this.fingerprint(images, i * pixels, pixels);
      if (journal) {
        journal.u32(print.length);
        journal.bytes(new Uint8Array(print.buffer, print.byteOffset, print.byteLength));
      }
      const before = c.counts.matches;
      detection = this.take(c, print) ?? detection;
      if (c.counts.matches > before) flagged?.push(i);
    }
    return detection;
  }

  /** Take a request another replica observed, from its journal (the fingerprints): the same state change and flag. */
  replay(clientId: string, journal: JournalReader): Detection | null {
    const c = this.storeOf(clientId);
    let detection: Detection | null = null;
    for (let i = journal.u32(); i > 0; i--) {
      const n = journal.u32();
      // Copied: the ring keeps the fingerprint, the journal's buffer is not ours to hold.
      const print = new Uint32Array(n);
      new Uint8Array(print.buffer).set(journal.bytes(n * 4));
      detection = this.take(c, print) ?? detection;
    }
    return detection;
  }

  private take({ store, counts: c }: { store: ClientPrints; counts: ClientCounts }, print: Uint32Array): Detection | null {
    const shared = store.take(print, this.options.history);
    if (c !== store) c.queries++;
    else c.queries = store.taken;
    if (shared > c.bestShared) c.bestShared = shared;
    if (shared < this.options.threshold) return null;
    c.matches++;
    if (c.matches < this.options.minMatches || this.flags.has(c.id)) return null;
    const detection: Detection = { clientId: c.id, w: Number.NaN, queries: c.queries, distances: 0, by: 'blacklight', matches: c.matches };
    this.flags.set(c.id, detection);
    return detection;
  }

  /**
   * The client's state and flag, for a snapshot replicas load instead of replaying the journals before
   * it: its counters and its kept fingerprints, oldest first (the index is rebuilt from them).
   * Bounded: at most `history` fingerprints of `hashes` hashes. Scope `global`: the whole state (the
   * one store, every client's counts and flags), whichever client is named — its shared log is one.
   */
  snapshot(clientId: string, w: JournalWriter): void {
    if (!this.global) return this.snapshotStore(clientId, w);
    const ids = new Set([...this.counts.keys(), ...this.flags.keys()]);
    w.u32(ids.size);
    for (const id of ids) {
      const name = Buffer.from(id);
      w.u32(name.length);
      w.bytes(name);
      writeFlag(w, this.flags.get(id));
      const c = this.counts.get(id);
      w.u8(c ? 1 : 0);
      if (c) for (const v of [c.queries, c.matches, c.bestShared]) w.f64(v);
    }
    this.snapshotStore(GLOBAL_STORE, w);
  }

  private snapshotStore(clientId: string, w: JournalWriter): void {
    writeFlag(w, this.flags.get(clientId));
    const c = this.clients.get(clientId);
    w.u8(c ? 1 : 0);
    c?.write(w);
  }

  /** Replace the client's state and flag by a snapshot's (scope `global`: the whole state). */
  restore(clientId: string, r: JournalReader): void {
    if (!this.global) return this.restoreStore(clientId, r);
    this.forget(GLOBAL_STORE);
    for (let n = r.u32(); n > 0; n--) {
      const id = Buffer.from(r.bytes(r.u32())).toString();
      const flag = readFlag(r, { clientId: id });
      if (flag) this.flags.set(id, flag);
      if (!r.u8()) continue;
      const c = this.recent(this.counts, id, () => new ClientCounts(id));
      c.queries = r.f64();
      c.matches = r.f64();
      c.bestShared = r.f64();
    }
    this.restoreStore(GLOBAL_STORE, r);
  }

  private restoreStore(clientId: string, r: JournalReader): void {
    this.clients.delete(clientId);
    this.flags.delete(clientId);
    const flag = readFlag(r, { clientId });
    if (flag) this.flags.set(clientId, flag);
    if (r.u8()) this.client(clientId).read(r);
  }

  /** Scope `global`: whether the one store is held (every client is matched against it). */
  tracks(clientId: string): boolean {
    return this.clients.has(this.global ? GLOBAL_STORE : clientId);
  }

  restoreFlag(d: Detection): void {
    if (!this.flags.has(d.clientId)) this.flags.set(d.clientId, d);
  }

  /** Drop the client's state and flag; scope `global`, GLOBAL_STORE: everything. */
  forget(clientId: string): void {
    if (this.global && clientId === GLOBAL_STORE) {
      this.clients.clear();
      this.counts.clear();
      this.flags.clear();
      return;
    }
    this.clients.delete(clientId);
    this.counts.delete(clientId);
    this.flags.delete(clientId);
  }

  get memoryBytes(): number {
    let n = 0;
    for (const c of this.clients.values()) n += c.entries * ENTRY_BYTES;
    return n;
  }

  summaries(): (ClientSummary & { matches: number; bestShared: number })[] {
    return [...(this.global ? this.counts : this.clients).values()].map((c) => ({
      clientId: c.id,
      queries: c.queries,
      distances: 0,
      w: null,
      minW: null,
      classSetSizes: [],
      flagged: this.flags.has(c.id),
      matches: c.matches,
      bestShared: c.bestShared,
    }));
  }
}
