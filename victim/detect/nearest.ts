/**
 * Exact nearest-neighbour distance from a query image to a growing set of 8-bit images (28×28 by
 * default; any H×W×C, each stored zero-padded to a multiple of 16 bytes, which adds 0 to every
 * distance), fast enough to run on every query the victim answers (PRADA, victim/detect/prada.ts).
 *
 * A scalar JS scan costs 784 multiply-adds per stored image, about 1 ms per query against 300 images
 * on the project's 2-core machines. The scan here is a small WebAssembly SIMD loop (victim/detect/nearest.wat,
 * built into nearest.wasm by scripts/build-kernels.ts): 16 pixels at a time, widened to 16 bits,
 * subtracted and squared-and-summed with i32x4.dot_i16x8_s. Results are exact integers, identical to
 * `bruteForceNearest` (test/prada.test.ts checks it).
 *
 * Memory: one WebAssembly.Memory per `DistanceKernel`, holding a query slot and fixed-size slabs (one
 * per image set, `capacity` images each) handed out from a free list, so a forgotten client's slabs
 * are reused.
 */
import { readFileSync } from 'node:fs';
import { IMAGE_SIZE } from '../../shared/datasets/index.js';

/** The compiled scan (one module for every image size: the stride is an argument). */
let compiled: WebAssembly.Module | undefined;
const PAGE = 65536;
/** Bytes per stored image: the pixels, zero-padded to whole 16-byte SIMD loads. */
export const strideOf = (pixels: number) => Math.ceil(pixels / 16) * 16;

/** Squared L2 distance (8-bit units) from q to its nearest point among `count`, by scalar JS (reference and tests). */
export function bruteForceNearest(q: Uint8Array, points: Uint8Array, count: number, pixels = IMAGE_SIZE): number {
  let best = Infinity;
  for (let k = 0; k < count; k++) {
    let s = 0;
    const off = k * pixels;
    for (let j = 0; j < pixels; j++) {
      const d = q[j] - points[off + j];
      s += d * d;
    }
    if (s < best) best = s;
  }
  return best;
}

export class DistanceKernel {
  private readonly memory: WebAssembly.Memory;
  private readonly scan: (q: number, base: number, count: number, stride: number) => number;
  private view: Uint8Array;
  private readonly free: number[] = [];
  private next: number;
  readonly slabBytes: number;
  readonly stride: number;

  /** `capacity`: images per slab (one slab per image set); `pixels`: bytes per image (H·W·C). */
  constructor(readonly capacity: number, readonly pixels = IMAGE_SIZE) {
    this.stride = strideOf(pixels);
    this.slabBytes = capacity * this.stride;
    // The query slot at offset 0, padded so slabs start on a 1 KiB boundary.
    this.next = Math.ceil(this.stride / 1024) * 1024;
    compiled ??= new WebAssembly.Module(readFileSync(new URL('./nearest.wasm', import.meta.url)));
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(this.next / PAGE) });
    const instance = new WebAssembly.Instance(compiled, { env: { mem: this.memory } });
    this.scan = instance.exports.nearest as (q: number, base: number, count: number, stride: number) => number;
    this.view = new Uint8Array(this.memory.buffer);
  }

  /** Current bytes of the memory (a grow detaches the old view). */
  get bytes(): Uint8Array {
    if (this.view.byteLength === 0) this.view = new Uint8Array(this.memory.buffer);
    return this.view;
  }

  /** Bytes the kernel's memory holds (for the admin view of the detector's footprint). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const offset = this.next;
    this.next += this.slabBytes;
    const short = this.next - this.memory.buffer.byteLength;
    if (short > 0) this.memory.grow(Math.ceil(short / PAGE));
    return offset;
  }

  release(offset: number): void {
    this.free.push(offset);
  }

  nearest(q: Uint8Array, offset: number, count: number): number {
    if (count === 0) return Infinity;
    this.bytes.set(q.subarray(0, this.pixels), 0);
    return this.scan(0, offset, count, this.stride);
  }
}

/** A set of at most `capacity` images living in one slab of a DistanceKernel. */
export class ImageSet {
  private offset = -1;
  count = 0;

  constructor(private readonly kernel: DistanceKernel) {}

  get full(): boolean {
    return this.count >= this.kernel.capacity;
  }

  /** Store a copy of q (ignored once full). */
  add(q: Uint8Array): void {
    if (this.full) return;
    if (this.offset < 0) this.offset = this.kernel.allocate();
    // Only the pixels are written: a slot's padding stays zero, even in a reused slab.
    this.kernel.bytes.set(q.subarray(0, this.kernel.pixels), this.offset + this.count * this.kernel.stride);
    this.count++;
  }

  /** Exact squared L2 distance (8-bit units) to the nearest stored image; Infinity when empty. */
  nearest(q: Uint8Array): number {
    return this.offset < 0 ? Infinity : this.kernel.nearest(q, this.offset, this.count);
  }

  /** The k-th stored image's pixels (a view, valid until the kernel's memory next grows). */
  image(k: number): Uint8Array {
    const at = this.offset + k * this.kernel.stride;
    return this.kernel.bytes.subarray(at, at + this.kernel.pixels);
  }

  /** Hand the slab back (the client was forgotten). */
  release(): void {
    if (this.offset >= 0) this.kernel.release(this.offset);
    this.offset = -1;
    this.count = 0;
  }
}
