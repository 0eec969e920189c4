import { pixelCount, type ImageSet, type ImageShape } from '../../shared/datasets/types.js';
import { DARK, GREY, RED, Raster, WHITE, BLACK, classColour, contrastOn, drawLegend, imageScale, legendRows, textWidth, type Rgb } from './raster.js';
import type { AttackMode, SweepOutcome } from '../campaign/transfer.js';

/** What a run's image grids are drawn from (writeResults passes it through). */
export interface ResultExtras {
  evalSet: ImageSet;
  /** Class count of the victim's output (legends, per-class rows). */
  classes: number;
  outcome: SweepOutcome;
  targets: Int32Array;
  /** The victim's labels of the clean evaluation images (the image grids show them under the clean digits). */
  cleanVictim?: Int32Array;
}

/**
 * The run's PNG pictures, drawn from data (run-pictures.ts files them under images/ in the run store):
 * - boundary maps: the substitute's and the victim's labels over a 2-D slice of input space;
 * - image grids: clean vs adversarial images with the victim's labels (the seed paper's figures 4–6).
 * Images of any H×W×C are drawn at about 84 px across, greyscale as grey and RGB as RGB.
 * Layouts are described at each writer. Every picture carries its own legend, so it reads on its own.
 */
export const IMAGES_DIR = 'images';
const M = 10; // outer margin
const FONT = 2; // text scale: 10 × 14 px characters
const LINE = 7 * FONT;

export interface BoundaryMapPicture {
  /** The clean image (H·W·C values in [0, 1]). */
  image: Float32Array;
  shape: ImageShape;
  classes: number;
  index: number;
  trueLabel: number;
  substituteLabel: number;
  victimLabel: number;
  size: number;
  extent: number;
  /** size × size labels in raster order (top row = +d2, right = +d1), as planeGrid lays them out. */
  substitute: ArrayLike<number>;
  victim: ArrayLike<number>;
  agreement: number | null;
  queries: number;
}

/**
 * Layout, left to right: the clean image (about 84 px across) with its true / substitute / victim labels under it;
 * then three square panels of equal size — the substitute's labels, the victim's labels (class colours)
 * and where they differ (dark = differ, light = agree). A black-and-white square marks the original
 * image (the origin of the plane) on every panel. Under the panels: agreement %, the victim queries
 * the map cost, the axes, and the class-colour legend. Returns the PNG's bytes.
 */
export function boundaryMapPng(m: BoundaryMapPicture): Uint8Array {
  const cell = Math.max(2, Math.floor(200 / m.size));
  const panel = cell * m.size;
  const gap = 12;
  const scale = imageScale(m.shape);
  const digitW = Math.max(m.shape[1] * scale, textWidth('TRUE 00', FONT));
  const imageH = m.shape[0] * scale;
  const panelX = (k: number) => M + digitW + gap + k * (panel + gap);
  const top = M + LINE + 6;
  const width = panelX(3) - gap + M;
  const legendH = legendRows(m.classes, 16, width - panelX(0) - M) * 20 - 4;
  const height = Math.max(top + panel + 8 + LINE + 6 + 7 + 8 + legendH, top + imageH + 6 + 3 * (LINE + 4)) + M;
  const r = new Raster(width, height);

  r.text(M, M, 'CLEAN', FONT, BLACK);
  ['SUBSTITUTE', 'VICTIM', 'DIFFER'].forEach((t, k) => r.text(panelX(k), M, t, FONT, BLACK));
  r.image(M, top, m.image, 0, m.shape, scale);
  [`TRUE ${m.trueLabel}`, `SUB ${m.substituteLabel}`, `VIC ${m.victimLabel}`].forEach((t, k) =>
    r.text(M, top + imageH + 6 + k * (LINE + 4), t, FONT, DARK),
  );

  const panels: ((i: number) => Rgb)[] = [
    (i) => classColour(m.substitute[i]),
    (i) => classColour(m.victim[i]),
    (i) => (m.substitute[i] === m.victim[i] ? [235, 235, 235] : [40, 40, 40]),
  ];
  panels.forEach((colourOf, k) => {
    const px = panelX(k);
    for (let row = 0; row < m.size; row++) {
      for (let col = 0; col < m.size; col++) r.fill(px + col * cell, top + row * cell, cell, cell, colourOf(row * m.size + col));
    }
    r.frame(px - 1, top - 1, panel + 2, panel + 2, 1, DARK);
    // The origin sits at the panel's centre whatever the grid size (between cells when it is even).
    const h = Math.ceil(cell / 2) + 2;
    const c = panel / 2;
    r.frame(px + c - h, top + c - h, 2 * h, 2 * h, 1, BLACK);
    r.frame(px + c - h + 1, top + c - h + 1, 2 * h - 2, 2 * h - 2, 1, WHITE);
  });

  let y = top + panel + 8;
  const agree = m.agreement === null ? '-' : `${(100 * m.agreement).toFixed(1)}%`;
  r.text(panelX(0), y, `AGREE ${agree}   VICTIM QUERIES ${m.queries}`, FONT, BLACK);
  y += LINE + 6;
  r.text(panelX(0), y, `RIGHT: +FGSM SIGN  UP: +RANDOM ORTHOGONAL SIGN  ±${m.extent}  IMAGE ${m.index}`, 1, DARK);
  y += 7 + 8;
  drawLegend(r, panelX(0), y, 16, m.classes, width - panelX(0) - M);
  return r.encode();
}

export interface GridOptions {
  /** ε columns wanted; the nearest ε of the run is used for each (default 0.1, 0.2, 0.3). */
  epsilons?: number[];
  /** Rows (images), chosen one per true class in turn (default: one per class, at most 10). */
  rows?: number;
}

/** Indices of the run's ε nearest to each wanted value, without repeats, ascending. */
export function pickEpsilons(available: number[], wanted: number[]): number[] {
  const picked = new Set<number>();
  for (const w of wanted) {
    let best = -1;
    available.forEach((e, i) => {
      if (best < 0 || Math.abs(e - w) < Math.abs(available[best] - w)) best = i;
    });
    if (best >= 0) picked.add(best);
  }
  return [...picked].sort((a, b) => a - b);
}

/** Up to `rows` images, cycling through the true classes so every class appears; `usable` filters. */
export function chooseRows(truth: Int32Array, rows: number, usable: (i: number) => boolean): number[] {
  const byClass = new Map<number, number[]>();
  truth.forEach((t, i) => {
    if (!usable(i)) return;
    const list = byClass.get(t) ?? [];
    list.push(i);
    byClass.set(t, list);
  });
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const out: number[] = [];
  for (let depth = 0; out.length < rows; depth++) {
    const before = out.length;
    for (const c of classes) {
      const idx = byClass.get(c)?.[depth];
      if (idx !== undefined && out.length < rows) out.push(idx);
    }
    if (out.length === before) break;
  }
  return out;
}

/**
 * Layout of one attack mode's grid: a title row; a header row (CLEAN, then one column per ε); one row
 * per chosen image: its true label (targeted: true>target) at the left, then the clean image and
 * its adversarial versions, each about 84 px across, each with a bar under it in the colour of the
 * victim's label and the label's index; a red frame marks the adversarial images that worked on the victim (untargeted:
 * label ≠ truth; targeted: label = target). The class-colour legend closes the picture.
 * The clean bar shows the victim's clean label when `extras.cleanVictim` is given, else the true label.
 */
function drawGrid(extras: ResultExtras, mode: AttackMode, opts: GridOptions): Raster | null {
  const { evalSet, outcome, targets } = extras;
  const epsilons = outcome.points.filter((p) => p.mode === mode).map((p) => p.epsilon);
  const columns = pickEpsilons(epsilons, opts.epsilons ?? [0.1, 0.2, 0.3]);
  if (columns.length === 0 || outcome.adversarial[mode].length === 0) return null;
  const truth = evalSet.labels;
  const clean = extras.cleanVictim ?? truth;
  const shape = evalSet.shape;
  const classes = extras.classes;
  const rows = chooseRows(truth, opts.rows ?? Math.min(10, classes), (i) =>
    mode === 'targeted' ? targets[i] !== truth[i] : clean[i] === truth[i],
  );
  if (rows.length === 0) return null;

  const scale = imageScale(shape);
  const img = Math.max(shape[1] * scale, textWidth('ε 0.00', FONT)) + 4; // image plus its 2-px frame
  const imgH = shape[0] * scale + 4;
  const bar = LINE + 2;
  const gap = 10;
  const widest = String(classes - 1);
  const labelW = textWidth(`${widest}>${widest}`, FONT) + 6;
  const colX = (k: number) => M + labelW + k * (img + gap);
  const rowH = imgH + bar + gap;
  const head = M + LINE + 8;
  const top = head + LINE + 6;
  const width = Math.max(colX(columns.length + 1) - gap + M, textWidth('BAR: VICTIM LABEL   RED FRAME: ATTACK WORKED ON THE VICTIM', 1) + 2 * M);
  const legendH = legendRows(classes, 16, width - 2 * M) * 20 - 4;
  const height = top + rows.length * rowH + 7 + 8 + legendH + M;
  const r = new Raster(width, height);

  const title = mode === 'targeted' ? 'TARGETED  ROW: TRUE>TARGET' : 'UNTARGETED  ROW: TRUE LABEL';
  r.text(M, M, title, FONT, BLACK);
  r.text(colX(0), head, 'CLEAN', FONT, BLACK);
  columns.forEach((e, k) => r.text(colX(k + 1), head, `ε ${epsilons[e].toFixed(2)}`, FONT, BLACK));

  const size = pixelCount(shape);
  const cellAt = (x: number, y: number, pixels: Float32Array, i: number, label: number, worked: boolean) => {
    r.frame(x, y, img, imgH, 2, worked ? RED : GREY);
    r.image(x + 2 + Math.floor((img - 4 - shape[1] * scale) / 2), y + 2, pixels, i * size, shape, scale);
    const colour = classColour(label);
    r.fill(x, y + imgH, img, bar, colour);
    r.text(x + (img - textWidth(String(label), FONT) + FONT) / 2, y + imgH + 1, String(label), FONT, contrastOn(colour));
  };
  rows.forEach((i, k) => {
    const y = top + k * rowH;
    const rowLabel = mode === 'targeted' ? `${truth[i]}>${targets[i]}` : String(truth[i]);
    r.text(M, y + imgH / 2 - LINE / 2, rowLabel, FONT, BLACK);
    cellAt(colX(0), y, evalSet.images, i, clean[i], false);
    columns.forEach((e, c) => {
      const label = outcome.victimLabels[mode][e][i];
      const worked = mode === 'targeted' ? label === targets[i] : label !== truth[i];
      cellAt(colX(c + 1), y, outcome.adversarial[mode][e], i, label, worked);
    });
  });
  const y = top + rows.length * rowH;
  r.text(M, y, 'BAR: VICTIM LABEL   RED FRAME: ATTACK WORKED ON THE VICTIM', 1, DARK);
  drawLegend(r, M, y + 7 + 8, 16, classes, width - 2 * M);
  return r;
}

/** grid-untargeted.png and grid-targeted.png (either left out when it has no image to show), by name. */
export function imageGridPngs(extras: ResultExtras, opts: GridOptions = {}): { name: string; png: Uint8Array }[] {
  const out: { name: string; png: Uint8Array }[] = [];
  for (const mode of ['untargeted', 'targeted'] as const) {
    const r = drawGrid(extras, mode, opts);
    if (r) out.push({ name: `grid-${mode}.png`, png: r.encode() });
  }
  return out;
}
