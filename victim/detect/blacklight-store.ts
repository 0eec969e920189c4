import type { JournalReader, JournalWriter } from './journal.js';

/** Bytes an index entry costs, roughly, in V8 (map slot + array element): for the memory report. */
export const ENTRY_BYTES = 48;

/** What Blacklight counts of a client: its queries, the ones that matched, the most hashes one shared. */
export class ClientCounts {
  queries = 0;
  matches = 0;
  bestShared = 0;

  constructor(readonly id: string) {}
}

/**
 * A Blacklight hash store (blacklight.ts): a client's (scope `key`, carrying its counts) or everyone's
 * (`global`). The last `history` fingerprints in a ring, with an index from hash to the fingerprints
 * holding it (ids count up, so each list is oldest first).
 */
export class ClientPrints extends ClientCounts {
  readonly ring: Uint32Array[] = [];
  /** Ring position of the oldest fingerprint once full. */
  head = 0;
  /** Fingerprints taken; a fingerprint's id is its number. */
  taken = 0;
  entries = 0;
  readonly index = new Map<number, number[]>();

  /** One query: the most hashes it shares with any kept fingerprint; then it joins the ring. */
  take(print: Uint32Array, history: number): number {
    const id = this.taken++;
    const shared = new Map<number, number>();
    let best = 0;
    for (const h of print) {
      const holders = this.index.get(h);
      if (!holders) continue;
      for (const q of holders) {
        const n = (shared.get(q) ?? 0) + 1;
        shared.set(q, n);
        if (n > best) best = n;
      }
    }
    // Evict the oldest fingerprint first when the ring is full: its ids are the smallest in each list.
    if (this.ring.length === history) {
      const old = this.ring[this.head];
      const oldId = id - history;
      for (const h of old) {
        const holders = this.index.get(h);
        if (!holders) continue;
        if (holders[0] === oldId) {
          holders.shift();
          this.entries--;
        }
        if (holders.length === 0) this.index.delete(h);
      }
      this.ring[this.head] = print;
      this.head = (this.head + 1) % history;
    } else this.ring.push(print);
    for (const h of print) {
      const holders = this.index.get(h);
      if (holders) {
        if (holders.at(-1) !== id) holders.push(id);
      } else this.index.set(h, [id]);
      this.entries++;
    }
    return best;
  }

  /** For a snapshot: the counters and the kept fingerprints, oldest first (the index is rebuilt from them). */
  write(w: JournalWriter): void {
    w.f64(this.taken);
    w.f64(this.matches);
    w.f64(this.bestShared);
    w.u32(this.ring.length);
    for (let k = 0; k < this.ring.length; k++) {
      const print = this.ring[(this.head + k) % this.ring.length];
      w.u32(print.length);
      w.bytes(new Uint8Array(print.buffer, print.byteOffset, print.byteLength));
    }
  }

  /** Read what write() wrote into this (empty) store. */
  read(r: JournalReader): void {
    this.taken = this.queries = r.f64();
    this.matches = r.f64();
    this.bestShared = r.f64();
    const kept = r.u32();
    // Oldest first at ring position 0 (head 0), ids counting up to the last query, as take() left them.
    for (let k = 0; k < kept; k++) {
      const print = new Uint32Array(r.u32());
      new Uint8Array(print.buffer).set(r.bytes(print.length * 4));
      this.ring.push(print);
      const id = this.taken - kept + k;
      for (const h of print) {
        const holders = this.index.get(h);
        if (holders) holders.push(id);
        else this.index.set(h, [id]);
        this.entries++;
      }
    }
  }
}
