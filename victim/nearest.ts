/**
 * Exact nearest-neighbour distance from a query image to a growing set of 8-bit images (28×28 by
 * default; any H×W×C, each stored zero-padded to a multiple of 16 bytes, which adds 0 to every
 * distance), fast
 * enough to run on every query the victim answers (PRADA, victim/prada.ts).
 *
 * A scalar JS scan costs 784 multiply-adds per stored image, about 1 ms per query against 300 images
 * on the project's 2-core machines. The scan here is a tiny hand-assembled WebAssembly SIMD loop
 * (the project has no wasm toolchain; shared/wasm-gemm.ts and wasm-lanes.ts do the same for training):
 * 16 pixels at a time, widened to 16 bits, subtracted and squared-and-summed with i32x4.dot_i16x8_s.
 * Results are exact integers, identical to `bruteForceNearest` (test/prada.test.ts checks it).
 *
 * Memory: one WebAssembly.Memory per `DistanceKernel`, holding a 784-byte query slot and fixed-size
 * slabs (one per image set, `capacity` images each) handed out from a free list, so a forgotten
 * client's slabs are reused.
 */
import { IMAGE_SIZE } from '../shared/mnist.js';

const leb = (n: number): number[] => {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n);
  return out;
};
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const tee = (i: number) => [0x22, i];
// i32.const takes signed LEB128: a non-negative value whose last group has bit 6 set needs one more group.
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>>= 7;
    const done = n === 0 && (b & 0x40) === 0;
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
};
const i32 = (v: number) => [0x41, ...sleb(v)]; // non-negative constants below 2^31
const simd = (op: number, ...imm: number[]) => [0xfd, ...leb(op), ...imm];
const [I32_ADD, I32_GE_U, I32_LT_U, SELECT, BR_IF, BR, END] = [0x6a, 0x4f, 0x49, 0x1b, 0x0d, 0x0c, 0x0b];
const LOAD = simd(0x00, 0, 0); // v128.load, align hint 1, offset 0
const ZERO = simd(0x0c, ...new Array<number>(16).fill(0)); // v128.const 0
const [EXT_LO_U, EXT_HI_U, SUB16, ADD32, DOT] = [simd(0x89), simd(0x8a), simd(0x91), simd(0xae), simd(0xba)];
const lane = (i: number) => simd(0x1b, i); // i32x4.extract_lane

// nearest(q, base, count) → min over k < count of Σ_j (q[j] − base[k·stride + j])²
// params 0 q, 1 base, 2 count | i32 locals 3 k, 4 p, 5 j, 6 best, 7 s | v128 locals 8 acc, 9 a, 10 b, 11 d
const HALF = (widen: number[]) => [...get(9), ...widen, ...get(10), ...widen, ...SUB16, ...tee(11), ...get(11), ...DOT, ...get(8), ...ADD32, ...set(8)];
const body = (stride: number) => [
  2, 5, 0x7f, 4, 0x7b, // locals: 5 × i32, 4 × v128
  ...i32(0x7fffffff), ...set(6), ...get(1), ...set(4), ...i32(0), ...set(3),
  0x02, 0x40, 0x03, 0x40,
  ...get(3), ...get(2), I32_GE_U, BR_IF, 1,
  ...ZERO, ...set(8), ...i32(0), ...set(5),
  0x02, 0x40, 0x03, 0x40,
  ...get(5), ...i32(stride), I32_GE_U, BR_IF, 1,
  ...get(0), ...get(5), I32_ADD, ...LOAD, ...set(9),
  ...get(4), ...get(5), I32_ADD, ...LOAD, ...set(10),
  ...HALF(EXT_LO_U), ...HALF(EXT_HI_U),
  ...get(5), ...i32(16), I32_ADD, ...set(5), BR, 0,
  END, END,
  ...get(8), ...lane(0), ...get(8), ...lane(1), I32_ADD, ...get(8), ...lane(2), I32_ADD, ...get(8), ...lane(3), I32_ADD, ...set(7),
  ...get(7), ...get(6), ...get(7), ...get(6), I32_LT_U, SELECT, ...set(6),
  ...get(4), ...i32(stride), I32_ADD, ...set(4), ...get(3), ...i32(1), I32_ADD, ...set(3), BR, 0,
  END, END,
  ...get(6), END,
];
const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
const name = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
const moduleFor = (stride: number) => new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f]), // (i32, i32, i32) → i32
  ...section(2, [1, ...name('env'), ...name('mem'), 0x02, 0x00, 1]), // imported memory, min 1 page
  ...section(3, [1, 0]),
  ...section(7, [1, ...name('nearest'), 0x00, 0]),
  ...section(10, [1, ...leb(body(stride).length), ...body(stride)]),
]);

/** Compiled scans by stride (one per image size served). */
const compiled = new Map<number, WebAssembly.Module>();
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
  private readonly scan: (q: number, base: number, count: number) => number;
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
    let module = compiled.get(this.stride);
    if (!module) compiled.set(this.stride, (module = new WebAssembly.Module(moduleFor(this.stride))));
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(this.next / PAGE) });
    const instance = new WebAssembly.Instance(module, { env: { mem: this.memory } });
    this.scan = instance.exports.nearest as (q: number, base: number, count: number) => number;
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
    return this.scan(0, offset, count);
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

  /** Hand the slab back (the client was forgotten). */
  release(): void {
    if (this.offset >= 0) this.kernel.release(this.offset);
    this.offset = -1;
    this.count = 0;
  }
}
