import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { createRng } from '../shared/random.js';

/**
 * An ImageFolder tree of RGB PNGs for the tests: three classes of coloured shapes on a noisy grey
 * background — red squares, green discs, blue triangles — each at a seeded random place and size.
 * Colour and form both separate the classes, so a small CNN learns them in a few epochs.
 */
export const SHAPE_CLASSES = ['disc', 'square', 'triangle'] as const;

export interface ShapesOptions {
  size?: number;
  perClass?: number;
  seed?: number;
  /** Greyscale PNGs (colour type 0) instead of RGB. */
  grey?: boolean;
}

function inside(kind: (typeof SHAPE_CLASSES)[number], x: number, y: number, cx: number, cy: number, r: number): boolean {
  if (kind === 'square') return Math.abs(x - cx) <= r && Math.abs(y - cy) <= r;
  if (kind === 'disc') return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
  // An upward triangle: apex at (cx, cy − r), base at y = cy + r.
  const t = (y - (cy - r)) / (2 * r);
  return t >= 0 && t <= 1 && Math.abs(x - cx) <= t * r;
}

const COLOUR: Record<(typeof SHAPE_CLASSES)[number], [number, number, number]> = {
  square: [220, 40, 40],
  disc: [40, 200, 60],
  triangle: [50, 70, 230],
};

/** One PNG's bytes. */
export function shapePng(kind: (typeof SHAPE_CLASSES)[number], rng: () => number, size: number, grey = false): Buffer {
  const png = new PNG({ width: size, height: size });
  const r = size * (0.22 + 0.12 * rng());
  const cx = r + rng() * (size - 2 * r);
  const cy = r + rng() * (size - 2 * r);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 4;
      const bg = 90 + Math.floor(rng() * 60);
      const c = inside(kind, x + 0.5, y + 0.5, cx, cy, r) ? COLOUR[kind] : [bg, bg, bg];
      const v = grey ? Math.round((c[0] + c[1] + c[2]) / 3) : 0;
      png.data[o] = grey ? v : c[0];
      png.data[o + 1] = grey ? v : c[1];
      png.data[o + 2] = grey ? v : c[2];
      png.data[o + 3] = 255;
    }
  }
  return PNG.sync.write(png, { colorType: grey ? 0 : 2 });
}

/** Write root/<class>/NNN.png; returns root. */
export function writeShapesTree(root: string, o: ShapesOptions = {}): string {
  const { size = 16, perClass = 60, seed = 1, grey = false } = o;
  const rng = createRng(seed);
  for (const kind of SHAPE_CLASSES) {
    mkdirSync(join(root, kind), { recursive: true });
    for (let i = 0; i < perClass; i++) writeFileSync(join(root, kind, `${String(i).padStart(3, '0')}.png`), shapePng(kind, rng, size, grey));
  }
  return root;
}
