/**
 * PRADA (Juuti et al., EuroS&P 2019): on-line detection of model-extraction query streams, per client.
 *
 * For each query x the victim labelled c: d = min L2 distance from x to G_c, the client's growing
 * set of earlier class-c queries; x joins G_c when d > T_c, and then T_c ← max(T_c, mean(D_c) − std(D_c))
 * over the distances of the points that joined. Distances are pooled; once more than `minDistances`
 * are pooled, the Shapiro–Wilk W of the pool is computed after every query and W < δ flags the client.
 * Natural images give roughly normal distances; a Jacobian-augmentation stream adds a cluster of tiny
 * ones (x + λ·sign(∇) lies about λ·√(pixels changed) from its parent), which pulls W down.
 * Three details follow the authors' reference implementation: D_c starts with a 0 for the first point
 * of a class, a class's distances join the pool once it has 10 of them, and pooled distances more than
 * 3 standard deviations from their mean are left out of W.
 *
 * Bounded memory and time per query, however long a client queries (the bounds that differ from PRADA,
 * whose sets and pool grow without limit):
 * - G_c holds at most `classCap` points (default 300); once full it stops growing and later queries are
 *   still measured against it. Points are kept as 8-bit pixels (the wire format; float32 queries are
 *   rounded to 8 bits for the detector only): at most classes × classCap × H·W·C bytes per client (2.35 MB
 *   for MNIST; 9.2 MB for 32×32×3 and 10 classes).
 * - The pool is a sliding window of the last `window` distances (default 250), kept sorted incrementally,
 *   so W costs O(window) per query with no sort (Royston's coefficients are cached per n).
 * - At most `maxClients` clients (default 100, so ≤ 235 MB of class sets) are tracked; the least
 *   recently active unflagged one is forgotten to make room. Flags are kept apart: a block never lapses.
 * Per query: one SIMD scan of at most classCap images (victim/detect/nearest.ts) plus O(window) for W; about
 * 40-50 µs on the project's 2-core machines.
 *
 * Replicas on a shared store: `observe` can journal what each query did to the client's state and
 * `replay` takes those steps on another replica's detector without measuring again
 * (victim/detect/prada-client.ts, victim/detect/shared-state.ts).
 *
 * Why a window of 250: it still holds the seed set and most of the first augmentation round of a
 * Papernot campaign when 1,000 natural images were labelled first by the same key, so that campaign is
 * flagged within its first round (a window of 500 took until the second); on natural test images W
 * stayed ≥ 0.914 over 10 clients × 10,000 queries (none flagged at δ = 0.9; ≥ 0.939 with a window of
 * 1,000). `--detector-window` trades one for the other; docs/results/defences.md has the figures.
 */
import { TransferlabError } from '../../shared/errors.js';
import { IMAGE_SIZE, CLASSES } from '../../shared/datasets/index.js';
import { readFlag, writeFlag, type JournalReader, type JournalWriter } from './journal.js';
import { DistanceKernel } from './nearest.js';
import { ClientState } from './prada-client.js';

export interface PradaOptions {
  /** Flag when W < delta (default 0.9). */
  delta: number;
  /** W is evaluated only once more than this many distances are pooled (default 100, as in PRADA). */
  minDistances: number;
  /** Pooled distances kept: the last `window` (default 250). */
  window: number;
  /** Most points per class set G_c (default 300). */
  classCap: number;
  /** Most clients tracked at once (default 100). */
  maxClients: number;
  /** Values per image, H·W·C of the served model (default 784, MNIST). */
  pixels: number;
  /** Classes of the served model (default 10). */
  classes: number;
}

/** Largest H·W·C whose squared distance fits the kernel's 31-bit sums: ⌊(2³¹ − 1) / 255²⌋. */
export const MAX_PIXELS = Math.floor(0x7fffffff / (255 * 255));

export const PRADA_DEFAULTS: PradaOptions = { delta: 0.9, minDistances: 100, window: 250, classCap: 300, maxClients: 100, pixels: IMAGE_SIZE, classes: CLASSES };

export interface Detection {
  clientId: string;
  /** W when the client was flagged. */
  w: number;
  /** Queries (images) the detector had seen from the client, the flagging one included. */
  queries: number;
  /** Distances in the window W was computed over. */
  distances: number;
  /** Which detector flagged the client (absent: PRADA, as in records from before there were several). */
  by?: 'prada' | 'blacklight';
  /** Blacklight: matched queries when the client was flagged. */
  matches?: number;
}

export interface ClientSummary {
  clientId: string;
  queries: number;
  distances: number;
  /** Latest W (null before minDistances were pooled). */
  w: number | null;
  minW: number | null;
  classSetSizes: number[];
  flagged: boolean;
}

export class PradaDetector {
  readonly options: PradaOptions;
  /** Insertion order = recency (re-inserted on every observation), for LRU eviction. */
  private readonly clients = new Map<string, ClientState>();
  private readonly flags = new Map<string, Detection>();
  private readonly pixels: Uint8Array;
  private readonly kernel: DistanceKernel;

  constructor(options: Partial<PradaOptions> = {}) {
    this.options = { ...PRADA_DEFAULTS, ...options };
    const o = this.options;
    const problems: string[] = [];
    if (!(o.delta > 0 && o.delta < 1)) problems.push(`delta must be in (0, 1) (got ${o.delta})`);
    if (!Number.isInteger(o.minDistances) || o.minDistances < 3) problems.push(`minDistances must be an integer ≥ 3 (got ${o.minDistances})`);
    if (!Number.isInteger(o.window) || o.window <= o.minDistances || o.window > 5000) problems.push(`window must be an integer in (minDistances, 5000] (got ${o.window})`);
    if (!Number.isInteger(o.classCap) || o.classCap < 1 || o.classCap > 5000) problems.push(`classCap must be an integer in 1..5000 (got ${o.classCap})`);
    if (!Number.isInteger(o.maxClients) || o.maxClients < 1) problems.push(`maxClients must be a positive integer (got ${o.maxClients})`);
    // The kernel sums squared 8-bit differences in 32-bit integers: 255² per value must not overflow.
    if (!Number.isInteger(o.pixels) || o.pixels < 1 || o.pixels > MAX_PIXELS) {
      problems.push(`images must have 1..${MAX_PIXELS} values (H·W·C, e.g. up to 104×104×3) for the distance kernel; got ${o.pixels}`);
    }
    if (!Number.isInteger(o.classes) || o.classes < 2) problems.push(`classes must be an integer ≥ 2 (got ${o.classes})`);
    if (problems.length) throw new TransferlabError('invalid_config', `PRADA detector: ${problems.join('; ')}`);
    this.kernel = new DistanceKernel(o.classCap, o.pixels);
    this.pixels = new Uint8Array(o.pixels);
  }

  private client(id: string): ClientState {
    let c = this.clients.get(id);
    if (c) {
      this.clients.delete(id);
    } else {
      if (this.clients.size >= this.options.maxClients) this.evict();
      c = new ClientState(id, this.options, this.kernel);
    }
    this.clients.set(id, c);
    return c;
  }

  private evict(): void {
    let victim: ClientState | undefined;
    for (const c of this.clients.values()) {
      if (!this.flags.has(c.id)) {
        victim = c;
        break;
      }
    }
    // Everyone tracked is flagged: drop the oldest state; its flag stays in `flags`.
    victim ??= this.clients.values().next().value;
    if (!victim) return;
    victim.release();
    this.clients.delete(victim.id);
  }

  /**
   * Feed one request's images (count × pixels, [0, 1]) with the labels the victim answered. Returns the
   * detection when this request made the client cross δ for the first time, else null. With a
   * journal, what each image did is written to it (for the replicas sharing a store). `flagged`
   * receives the index of each image after which the client's W stood below δ (PRADA's verdict on
   * one query: an action `reject` refuses the request holding it).
   */
  observe(clientId: string, images: Float32Array, labels: ArrayLike<number>, journal?: JournalWriter, flagged?: number[]): Detection | null {
    const c = this.client(clientId);
    const q = this.pixels;
    let detection: Detection | null = null;
    const pixels = this.options.pixels;
    journal?.u32(labels.length);
    for (let i = 0; i < labels.length; i++) {
      const off = i * pixels;
      // The detector works on 8-bit pixels: exact for the uint8 wire format, ≤ 0.5/255 per pixel otherwise.
      for (let j = 0; j < pixels; j++) q[j] = Math.round(images[off + j] * 255);
      const w = c.observe(q, labels[i], journal);
      if (w !== null && w < this.options.delta) flagged?.push(i);
      detection = this.judge(c, w) ?? detection;
    }
    return detection;
  }

  /**
   * Take a request another replica observed, from its journal: the same state change, and the same
   * flag, as observing it here. Returns the detection it made (already recorded by that replica).
   */
  replay(clientId: string, journal: JournalReader): Detection | null {
    const c = this.client(clientId);
    let detection: Detection | null = null;
    for (let i = journal.u32(); i > 0; i--) detection = this.judge(c, c.replay(journal)) ?? detection;
    return detection;
  }

  private judge(c: ClientState, w: number | null): Detection | null {
    if (w === null || !(w < this.options.delta) || this.flags.has(c.id)) return null;
    const detection = { clientId: c.id, w, queries: c.queries, distances: c.tested };
    this.flags.set(c.id, detection);
    return detection;
  }

  /**
   * The client's whole state and flag, for a snapshot replicas load instead of replaying the journals
   * before it (victim/detect/shared-state.ts); bounded like the state itself.
   */
  snapshot(clientId: string, w: JournalWriter): void {
    writeFlag(w, this.flags.get(clientId));
    const c = this.clients.get(clientId);
    w.u8(c ? 1 : 0);
    c?.snapshot(w);
  }

  /** Replace the client's state and flag by a snapshot's: where the replica that wrote it stood. */
  restore(clientId: string, r: JournalReader): void {
    this.forget(clientId);
    const flag = readFlag(r, { clientId });
    if (flag) this.flags.set(clientId, flag);
    if (r.u8()) this.client(clientId).restore(r);
  }

  /** Whether this detector holds state for the client (it may have been forgotten to make room). */
  tracks(clientId: string): boolean {
    return this.clients.has(clientId);
  }

  isFlagged(clientId: string): boolean {
    return this.flags.has(clientId);
  }

  /** Re-instate a flag recorded earlier (the audit log, at start-up), so blocks survive a restart. */
  restoreFlag(d: Detection): void {
    if (!this.flags.has(d.clientId)) this.flags.set(d.clientId, d);
  }

  /** Drop a client's state and flag (an operator lifted its block): it is watched afresh. */
  forget(clientId: string): void {
    this.clients.get(clientId)?.release();
    this.clients.delete(clientId);
    this.flags.delete(clientId);
  }

  /** Bytes held by the class sets (the distance kernel's memory). */
  get memoryBytes(): number {
    return this.kernel.memoryBytes;
  }

  detections(): Detection[] {
    return [...this.flags.values()];
  }

  summaries(): ClientSummary[] {
    return [...this.clients.values()].map((c) => ({
      clientId: c.id,
      queries: c.queries,
      distances: c.distances,
      w: c.w,
      minW: c.minW,
      classSetSizes: c.sets.map((s) => s.count),
      flagged: this.flags.has(c.id),
    }));
  }
}
