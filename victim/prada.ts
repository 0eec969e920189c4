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
 * Per query: one SIMD scan of at most classCap images (victim/nearest.ts) plus O(window) for W; about
 * 40-50 µs on the project's 2-core machines.
 *
 * Why a window of 250: it still holds the seed set and most of the first augmentation round of a
 * Papernot campaign when 1,000 natural images were labelled first by the same key, so that campaign is
 * flagged within its first round (a window of 500 took until the second); on natural test images W
 * stayed ≥ 0.914 over 10 clients × 10,000 queries (none flagged at δ = 0.9; ≥ 0.939 with a window of
 * 1,000). `--detector-window` trades one for the other; the README ("Defences") has the figures.
 */
import { TransferlabError } from '../shared/errors.js';
import { IMAGE_SIZE, CLASSES } from '../shared/mnist.js';
import { DistanceKernel, ImageSet } from './nearest.js';
import { shapiroWilkSorted } from './shapiro-wilk.js';
import { SortedWindow } from './sorted-window.js';

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

/** A class's distances join the pool once it has this many (reference implementation). */
const CLASS_MIN_DISTANCES = 10;
/** Pooled distances this many standard deviations from the mean are left out of W (reference implementation). */
const OUTLIER_STD = 3;

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

/** G_c with its threshold: running mean/variance (Welford) of the distances of the points that joined. */
class ClassSet {
  readonly images: ImageSet;
  threshold = 0;
  private n = 0;
  private mean = 0;
  private m2 = 0;

  constructor(kernel: DistanceKernel) {
    this.images = new ImageSet(kernel);
  }

  get count(): number {
    return this.images.count;
  }

  add(q: Uint8Array, distance: number): void {
    if (this.images.full) return;
    this.images.add(q);
    this.n++;
    const delta = distance - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (distance - this.mean);
    const std = Math.sqrt(this.m2 / this.n);
    this.threshold = Math.max(this.threshold, this.mean - std);
  }
}

class ClientState {
  readonly sets: ClassSet[];
  readonly pool: SortedWindow;
  /** Distances of classes with fewer than CLASS_MIN_DISTANCES so far, held back from the pool. */
  private readonly pending: (number[] | null)[];
  queries = 0;
  distances = 0;
  w: number | null = null;
  minW: number | null = null;
  /** Values W was last computed over (after outlier rejection). */
  tested = 0;

  constructor(readonly id: string, private readonly opts: PradaOptions, kernel: DistanceKernel) {
    this.sets = Array.from({ length: opts.classes }, () => new ClassSet(kernel));
    this.pending = Array.from({ length: opts.classes }, () => []);
    this.pool = new SortedWindow(opts.window);
  }

  /** Give the class sets' memory back (the client is being forgotten). */
  release(): void {
    for (const s of this.sets) s.images.release();
  }

  /** One query; returns W when it was evaluated. */
  observe(q: Uint8Array, label: number): number | null {
    this.queries++;
    const set = this.sets[label];
    if (!set) return null; // a label outside 0..classes-1 cannot come from the model; ignore rather than crash
    if (set.count === 0) {
      // The authors' reference implementation seeds D_c with a 0 for the first point, which keeps
      // T_c low while the set is young so that G_c grows to cover the class.
      set.add(q, 0);
      return null;
    }
    const squared = set.images.nearest(q);
    // An exact repeat of an image already in G_c tells nothing about how the client explores the
    // input space (a retried request, a popular image); pooling its 0 would fake a cluster.
    if (squared === 0) return null;
    const distance = Math.sqrt(squared) / 255;
    if (distance > set.threshold) set.add(q, distance);
    this.distances++;
    // As in the reference implementation, a class's distances enter the pool only once it has
    // CLASS_MIN_DISTANCES of them: the first few, against a tiny G_c, are not yet typical.
    const held = this.pending[label];
    if (held) {
      held.push(distance);
      if (held.length < CLASS_MIN_DISTANCES) return null;
      for (const d of held) this.pool.push(d);
      this.pending[label] = null;
    } else {
      this.pool.push(distance);
    }
    return this.evaluate();
  }

  /** W over the pool without its outliers (|d − mean| ≥ 3·std, as in the reference implementation). */
  private evaluate(): number | null {
    const { sorted, count } = this.pool;
    if (count <= this.opts.minDistances) return null;
    let sum = 0;
    for (let i = 0; i < count; i++) sum += sorted[i];
    const mean = sum / count;
    let ss = 0;
    for (let i = 0; i < count; i++) ss += (sorted[i] - mean) ** 2;
    const band = OUTLIER_STD * Math.sqrt(ss / count);
    let lo = 0;
    while (lo < count && !(sorted[lo] > mean - band)) lo++;
    let hi = count;
    while (hi > lo && !(sorted[hi - 1] < mean + band)) hi--;
    this.tested = hi - lo;
    if (this.tested <= this.opts.minDistances) return null;
    const { w } = shapiroWilkSorted(sorted.subarray(lo, hi));
    this.w = w;
    this.minW = this.minW === null ? w : Math.min(this.minW, w);
    return w;
  }
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
   * detection when this request made the client cross δ for the first time, else null.
   */
  observe(clientId: string, images: Float32Array, labels: ArrayLike<number>): Detection | null {
    const c = this.client(clientId);
    const q = this.pixels;
    let detection: Detection | null = null;
    const pixels = this.options.pixels;
    for (let i = 0; i < labels.length; i++) {
      const off = i * pixels;
      // The detector works on 8-bit pixels: exact for the uint8 wire format, ≤ 0.5/255 per pixel otherwise.
      for (let j = 0; j < pixels; j++) q[j] = Math.round(images[off + j] * 255);
      const w = c.observe(q, labels[i]);
      if (w !== null && w < this.options.delta && !this.flags.has(clientId)) {
        detection = { clientId, w, queries: c.queries, distances: c.tested };
        this.flags.set(clientId, detection);
      }
    }
    return detection;
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
