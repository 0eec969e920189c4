/**
 * A detector's journal of one request: what each of its images did to the client's state (PRADA:
 * the class, the distance and, for a point that joined its class set, the pixels; Blacklight: the
 * fingerprint), in a compact binary form. Replicas sharing a Redis store append every request's
 * journal to the client's log, and each replica replays the others' journals into its own detector,
 * so every replica's state is the one a single process would have after the same requests in the
 * same order (victim/detect/shared-state.ts).
 */
export class JournalWriter {
  private buf = Buffer.alloc(256);
  private at = 0;

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.alloc(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  u8(v: number): void {
    this.room(1);
    this.buf.writeUInt8(v, this.at);
    this.at += 1;
  }

  u32(v: number): void {
    this.room(4);
    this.buf.writeUInt32LE(v >>> 0, this.at);
    this.at += 4;
  }

  /** A distance exactly as computed (float64), so a replay takes the same branches. */
  f64(v: number): void {
    this.room(8);
    this.buf.writeDoubleLE(v, this.at);
    this.at += 8;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** Another journal, length-prefixed (one per detector of a set). */
  chunk(w: JournalWriter): void {
    const b = w.finish();
    this.u32(b.length);
    this.bytes(b);
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

export class JournalReader {
  private at = 0;

  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new Error(`detector journal truncated (${this.buf.length} bytes, wanted ${this.at + n})`);
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.at++);
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    return v;
  }

  /** A view of the next n bytes (valid while the journal is). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.at, n);
    this.at += n;
    return v;
  }

  chunk(): JournalReader {
    const n = this.u32();
    const v = this.bytes(n);
    return new JournalReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  }
}

const BY = [undefined, 'prada', 'blacklight'] as const;

/** What a detector's flag of a client holds (its Detection, the client's id aside). */
export interface JournalledFlag {
  w: number;
  queries: number;
  distances: number;
  by?: 'prada' | 'blacklight';
  matches?: number;
}

/** A detector's flag of a client, or none, exactly (NaN W included), for a snapshot of its state. */
export function writeFlag(w: JournalWriter, d: JournalledFlag | undefined): void {
  w.u8(d ? 1 : 0);
  if (!d) return;
  w.f64(d.w);
  w.f64(d.queries);
  w.f64(d.distances);
  w.u8(BY.indexOf(d.by));
  w.u8(d.matches === undefined ? 0 : 1);
  if (d.matches !== undefined) w.f64(d.matches);
}

export function readFlag<T extends object>(r: JournalReader, owner: T): (T & JournalledFlag) | undefined {
  if (!r.u8()) return undefined;
  const d: T & JournalledFlag = { ...owner, w: r.f64(), queries: r.f64(), distances: r.f64() };
  const by = BY[r.u8()];
  if (by) d.by = by;
  if (r.u8()) d.matches = r.f64();
  return d;
}
