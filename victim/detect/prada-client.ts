import type { JournalReader, JournalWriter } from './journal.js';
import { DistanceKernel, ImageSet } from './nearest.js';
import { shapiroWilkSorted } from './shapiro-wilk.js';
import { SortedWindow } from './sorted-window.js';

/**
 * One client's PRADA state (victim/detect/prada.ts describes the algorithm): its class sets G_c with their
 * thresholds, the pooled distance window and the W it last computed. A query is *measured* (its
 * nearest distance in G_c, a pure read) and then *taken* (the state change); the journal records
 * what measuring found, so a replica that did not see the query takes the same step from the
 * journal without the images it would need to measure it.
 */

/** A class's distances join the pool once it has this many (reference implementation). */
const CLASS_MIN_DISTANCES = 10;
/** Pooled distances this many standard deviations from the mean are left out of W (reference implementation). */
const OUTLIER_STD = 3;

/** Journal entry kinds, one byte each. */
const IGNORED = 0; // a label outside the model's classes
const SEED = 1; // first point of its class: joins with distance 0 (pixels follow)
const REPEAT = 2; // exact repeat of a point in G_c: counted, nothing else
const MEASURED = 3; // a distance (float64) that did not add a point
const JOINED = 4; // a distance that added the point to G_c (pixels follow)

/** In a snapshot: a class whose distances already joined the pool. */
const NOT_HELD = 0xffffffff;

export interface ClientLimits {
  window: number;
  minDistances: number;
  classes: number;
  pixels: number;
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

  /** Its points and threshold statistics, exactly (float64), for a snapshot. */
  snapshot(w: JournalWriter, pixels: number): void {
    w.f64(this.threshold);
    w.f64(this.n);
    w.f64(this.mean);
    w.f64(this.m2);
    w.u32(this.count);
    for (let k = 0; k < this.count; k++) w.bytes(this.images.image(k).subarray(0, pixels));
  }

  /** Load a snapshot into this empty set. */
  restore(r: JournalReader, pixels: number): void {
    this.threshold = r.f64();
    this.n = r.f64();
    this.mean = r.f64();
    this.m2 = r.f64();
    for (let k = r.u32(); k > 0; k--) this.images.add(r.bytes(pixels));
  }
}

export class ClientState {
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

  constructor(
    readonly id: string,
    private readonly opts: ClientLimits,
    kernel: DistanceKernel,
  ) {
    this.sets = Array.from({ length: opts.classes }, () => new ClassSet(kernel));
    this.pending = Array.from({ length: opts.classes }, () => []);
    this.pool = new SortedWindow(opts.window);
  }

  /** Give the class sets' memory back (the client is being forgotten). */
  release(): void {
    for (const s of this.sets) s.images.release();
  }

  /** One query; returns W when it was evaluated. Writes what it did to `journal` when given. */
  observe(q: Uint8Array, label: number, journal?: JournalWriter): number | null {
    this.queries++;
    const set = this.sets[label];
    if (!set) {
      journal?.u8(IGNORED); // a label outside 0..classes-1 cannot come from the model; ignore rather than crash
      return null;
    }
    if (set.count === 0) {
      // The authors' reference implementation seeds D_c with a 0 for the first point, which keeps
      // T_c low while the set is young so that G_c grows to cover the class.
      set.add(q, 0);
      if (journal) entry(journal, SEED, label, null, q.subarray(0, this.opts.pixels));
      return null;
    }
    const squared = set.images.nearest(q);
    // An exact repeat of an image already in G_c tells nothing about how the client explores the
    // input space (a retried request, a popular image); pooling its 0 would fake a cluster.
    if (squared === 0) {
      if (journal) entry(journal, REPEAT, label, null, null);
      return null;
    }
    const distance = Math.sqrt(squared) / 255;
    // A full set ignores a point that would join (add is a no-op): journal it as measured only.
    const joins = distance > set.threshold && !set.images.full;
    if (journal) entry(journal, joins ? JOINED : MEASURED, label, distance, joins ? q.subarray(0, this.opts.pixels) : null);
    return this.take(label, distance, joins ? q : null);
  }

  /** One query from a journal written by `observe` (on this replica or another): the same state change. */
  replay(r: JournalReader): number | null {
    this.queries++;
    const kind = r.u8();
    if (kind === IGNORED) return null;
    const label = r.u32();
    const set = this.sets[label];
    if (!set) throw new Error(`detector journal names class ${label} of ${this.sets.length}: replicas must serve the same model`);
    if (kind === SEED) {
      set.add(r.bytes(this.opts.pixels), 0);
      return null;
    }
    if (kind === REPEAT) return null;
    const distance = r.f64();
    if (kind === JOINED) return this.take(label, distance, r.bytes(this.opts.pixels));
    if (kind === MEASURED) return this.take(label, distance, null);
    throw new Error(`detector journal entry of unknown kind ${kind}`);
  }

  /** A measured distance: the point joins G_c (when `joined`), the distance is pooled, W evaluated. */
  private take(label: number, distance: number, joined: Uint8Array | null): number | null {
    if (joined) this.sets[label].add(joined, distance);
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

  /**
   * The whole state, for a snapshot that replicas load instead of replaying every journal before it
   * (victim/detect/shared-state.ts): restoring it into a new ClientState gives the same summaries
   * and the same future, query for query. Bounded: at most classes × classCap images and `window`
   * distances (plus fewer than CLASS_MIN_DISTANCES held back per class).
   */
  snapshot(w: JournalWriter): void {
    w.f64(this.queries);
    w.f64(this.distances);
    nullableF64(w, this.w);
    nullableF64(w, this.minW);
    w.f64(this.tested);
    for (let c = 0; c < this.sets.length; c++) {
      this.sets[c].snapshot(w, this.opts.pixels);
      const held = this.pending[c];
      w.u32(held === null ? NOT_HELD : held.length);
      for (const d of held ?? []) w.f64(d);
    }
    const pool = this.pool.inOrder();
    w.u32(pool.length);
    for (const d of pool) w.f64(d);
  }

  /** Load a snapshot written by `snapshot` into this new state. */
  restore(r: JournalReader): void {
    this.queries = r.f64();
    this.distances = r.f64();
    this.w = r.u8() ? r.f64() : null;
    this.minW = r.u8() ? r.f64() : null;
    this.tested = r.f64();
    for (let c = 0; c < this.sets.length; c++) {
      this.sets[c].restore(r, this.opts.pixels);
      const held = r.u32();
      this.pending[c] = held === NOT_HELD ? null : Array.from({ length: held }, () => r.f64());
    }
    for (let n = r.u32(); n > 0; n--) this.pool.push(r.f64());
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

function entry(j: JournalWriter, kind: number, label: number, distance: number | null, pixels: Uint8Array | null): void {
  j.u8(kind);
  j.u32(label);
  if (distance !== null) j.f64(distance);
  if (pixels) j.bytes(pixels);
}

function nullableF64(j: JournalWriter, v: number | null): void {
  j.u8(v === null ? 0 : 1);
  if (v !== null) j.f64(v);
}
