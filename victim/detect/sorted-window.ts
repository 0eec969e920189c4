/** The last `size` values, in arrival order (ring) and sorted (for W without a sort per query). */
export class SortedWindow {
  private readonly ring: Float64Array;
  readonly sorted: Float64Array;
  private start = 0;
  count = 0;

  constructor(private readonly size: number) {
    this.ring = new Float64Array(size);
    this.sorted = new Float64Array(size);
  }

  /** First index whose value is ≥ v. */
  private lowerBound(v: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The values in arrival order, oldest first (pushing them into an empty window rebuilds this one). */
  inOrder(): Float64Array {
    const out = new Float64Array(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.ring[(this.start + i) % this.size];
    return out;
  }

  push(v: number): void {
    if (this.count === this.size) {
      const old = this.ring[this.start];
      this.ring[this.start] = v;
      this.start = (this.start + 1) % this.size;
      const at = this.lowerBound(old);
      this.sorted.copyWithin(at, at + 1, this.count);
      this.count--;
    } else {
      this.ring[(this.start + this.count) % this.size] = v;
    }
    const at = this.lowerBound(v);
    this.sorted.copyWithin(at + 1, at, this.count);
    this.sorted[at] = v;
    this.count++;
  }
}
