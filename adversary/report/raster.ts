import { PNG } from 'pngjs';

/**
 * A tiny RGB drawing surface over pngjs: filled boxes, frames, images of any H×W×C and a 5×7 pixel font,
 * enough for the boundary maps and image grids without a canvas dependency.
 */
export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];
export const GREY: Rgb = [200, 200, 200];
export const DARK: Rgb = [60, 60, 60];
export const RED: Rgb = [214, 39, 40];

/**
 * One colour per class (Tableau 10): distinct, and readable for the common colour-vision
 * deficiencies. The HTML report should draw its legend from this list so pictures and page agree.
 */
export const CLASS_COLOURS: readonly Rgb[] = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
];

/**
 * The colour of class c: Tableau 10 for the first ten, then hues spaced by the golden angle, so a
 * dataset with many classes (EMNIST has 47) still gets distinct, stable colours.
 */
export function classColour(c: number): Rgb {
  if (c < CLASS_COLOURS.length) return CLASS_COLOURS[c];
  const hue = ((c * 137.508) % 360) / 60;
  const light = c % 2 === 0 ? 0.55 : 0.4;
  const chroma = (1 - Math.abs(2 * light - 1)) * 0.65;
  const x = chroma * (1 - Math.abs((hue % 2) - 1));
  const [r, g, b] = hue < 1 ? [chroma, x, 0] : hue < 2 ? [x, chroma, 0] : hue < 3 ? [0, chroma, x] : hue < 4 ? [0, x, chroma] : hue < 5 ? [x, 0, chroma] : [chroma, 0, x];
  const m = light - chroma / 2;
  return [r, g, b].map((v) => Math.round((v + m) * 255)) as unknown as Rgb;
}

export const classColourHex = (c: number): string =>
  '#' + classColour(c).map((v) => v.toString(16).padStart(2, '0')).join('');

/** Black or white, whichever reads better on `bg` (relative luminance, Rec. 709 weights). */
export const contrastOn = (bg: Rgb): Rgb => (0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2] > 150 ? BLACK : WHITE);

/** 5×7 glyphs: seven rows of five bits (MSB leftmost), two hex digits per row. */
const GLYPHS: Record<string, string> = {
  '0': '0E11131519110E', '1': '040C040404040E', '2': '0E11010204081F', '3': '1F02040201110E',
  '4': '02060A121F0202', '5': '1F101E0101110E', '6': '0608101E11110E', '7': '1F010204080808',
  '8': '0E11110E11110E', '9': '0E11110F01020C',
  A: '0E1111111F1111', B: '1E11111E11111E', C: '0E11101010110E', D: '1C12111111121C',
  E: '1F10101E10101F', F: '1F10101E101010', G: '0E11101711110F', H: '1111111F111111',
  I: '0E04040404040E', J: '0702020202120C', K: '11121418141211', L: '1010101010101F',
  M: '111B1515111111', N: '11111915131111', O: '0E11111111110E', P: '1E11111E101010',
  Q: '0E11111115120D', R: '1E11111E141211', S: '0F10100E01011E', T: '1F040404040404',
  U: '1111111111110E', V: '11111111110A04', W: '1111111515150A', X: '11110A040A1111',
  Y: '1111110A040404', Z: '1F01020408101F',
  '.': '000000000C0C00', '%': '18190204081303', '-': '0000001F000000', '=': '00001F001F0000',
  ':': '000C0C000C0C00', '>': '08040201020408', 'ε': '00000F100E100F', '±': '04041F0404001F',
  ' ': '00000000000000',
};

export class Raster {
  readonly png: PNG;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = WHITE,
  ) {
    this.png = new PNG({ width, height });
    this.fill(0, 0, width, height, background);
  }

  /** Fill a box; parts outside the surface are cut off. */
  fill(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(0, Math.floor(x));
    const y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(this.width, Math.floor(x + w));
    const y1 = Math.min(this.height, Math.floor(y + h));
    const d = this.png.data;
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) {
        const o = (yy * this.width + xx) * 4;
        d[o] = c[0];
        d[o + 1] = c[1];
        d[o + 2] = c[2];
        d[o + 3] = 255;
      }
    }
  }

  /** A frame of thickness t drawn inside the box. */
  frame(x: number, y: number, w: number, h: number, t: number, c: Rgb): void {
    this.fill(x, y, w, t, c);
    this.fill(x, y + h - t, w, t, c);
    this.fill(x, y, t, h, c);
    this.fill(x + w - t, y, t, h, c);
  }

  /**
   * One H×W×C image (row-major HWC, values in [0, 1], 0 black) from `offset`, each pixel as a
   * scale × scale block: one channel draws as grey, three as RGB (further channels are not drawn).
   */
  image(x: number, y: number, data: ArrayLike<number>, offset: number, shape: readonly [number, number, number], scale: number): void {
    const [h, w, ch] = shape;
    const byte = (i: number) => Math.round(Math.min(1, Math.max(0, data[i])) * 255);
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const at = offset + (r * w + c) * ch;
        const grey = byte(at);
        const rgb: Rgb = ch >= 3 ? [grey, byte(at + 1), byte(at + 2)] : [grey, grey, grey];
        this.fill(x + c * scale, y + r * scale, scale, scale, rgb);
      }
    }
  }

  /** Text in the 5×7 font (upper case; unknown characters draw as blanks); returns its width. */
  text(x: number, y: number, s: string, scale: number, c: Rgb): number {
    let cx = x;
    for (const ch of s.toUpperCase().replaceAll('Ε', 'ε')) {
      const g = GLYPHS[ch] ?? GLYPHS[' '];
      for (let r = 0; r < 7; r++) {
        const bits = parseInt(g.slice(2 * r, 2 * r + 2), 16);
        for (let b = 0; b < 5; b++) if (bits & (16 >> b)) this.fill(cx + b * scale, y + r * scale, scale, scale, c);
      }
      cx += 6 * scale;
    }
    return cx - x;
  }

  encode(): Buffer {
    return PNG.sync.write(this.png);
  }
}

/** Width of `s` in the 5×7 font at `scale` (6 columns per character including the gap). */
export const textWidth = (s: string, scale: number): number => [...s].length * 6 * scale;

/** Scale that draws an H×W image about `target` pixels across (never below 1). */
export const imageScale = (shape: readonly [number, number, number], target = 84): number => Math.max(1, Math.round(target / Math.max(shape[0], shape[1])));

/** Rows of the legend for `classes` boxes within `width` pixels. */
export const legendRows = (classes: number, box: number, width: number): number =>
  Math.ceil(classes / Math.max(1, Math.floor((width + 4) / (box + 4))));

/** The class colours with their indices, wrapped to `width`: the legend every picture carries. Returns its height. */
export function drawLegend(r: Raster, x: number, y: number, box: number, classes: number, width = r.width - x): number {
  const perRow = Math.max(1, Math.floor((width + 4) / (box + 4)));
  for (let k = 0; k < classes; k++) {
    const colour = classColour(k);
    const bx = x + (k % perRow) * (box + 4);
    const by = y + Math.floor(k / perRow) * (box + 4);
    r.fill(bx, by, box, box, colour);
    const label = String(k);
    const scale = Math.max(1, Math.floor((box - 2) / (6 * label.length + 2)));
    r.text(bx + Math.floor((box - textWidth(label, scale) + scale) / 2), by + Math.floor((box - 7 * scale) / 2), label, scale, contrastOn(colour));
  }
  return legendRows(classes, box, width) * (box + 4) - 4;
}
