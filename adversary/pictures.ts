import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_SIZE, type Dataset } from '../shared/mnist.js';
import { writeFileAtomic } from './run-folder.js';
import { CLASS_COLOURS, DARK, GREY, RED, Raster, WHITE, BLACK, contrastOn, drawLegend, textWidth, type Rgb } from './raster.js';
import type { AttackMode, SweepOutcome } from './transfer.js';

/** What a run's image grids are drawn from (writeResults passes it through). */
export interface ResultExtras {
  evalSet: Dataset;
  outcome: SweepOutcome;
  targets: Int32Array;
  /** The victim's labels of the clean evaluation images (the image grids show them under the clean digits). */
  cleanVictim?: Int32Array;
}

/**
 * The run's PNG pictures (all under <runDir>/images/, paths recorded relative to the run folder):
 * - boundary maps: the substitute's and the victim's labels over a 2-D slice of input space;
 * - image grids: clean vs adversarial digits with the victim's labels (the seed paper's figures 4–6).
 * Layouts are described at each writer. Every picture carries its own legend, so it reads on its own.
 */
export const IMAGES_DIR = 'images';
const M = 10; // outer margin
const FONT = 2; // text scale: 10 × 14 px characters
const LINE = 7 * FONT;

function save(runDir: string, name: string, r: Raster): string {
  mkdirSync(join(runDir, IMAGES_DIR), { recursive: true });
  const rel = `${IMAGES_DIR}/${name}`;
  writeFileAtomic(join(runDir, rel), r.encode());
  return rel;
}

export interface BoundaryMapPicture {
  /** The clean image (784 values in [0, 1]). */
  image: Float32Array;
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
 * Layout, left to right: the clean digit (×3) with its true / substitute / victim labels under it;
 * then three square panels of equal size — the substitute's labels, the victim's labels (class colours)
 * and where they differ (dark = differ, light = agree). A black-and-white square marks the original
 * image (the origin of the plane) on every panel. Under the panels: agreement %, the victim queries
 * the map cost, the axes, and the class-colour legend. Returns the path relative to runDir.
 */
export function writeBoundaryMap(runDir: string, name: string, m: BoundaryMapPicture): string {
  const cell = Math.max(2, Math.floor(200 / m.size));
  const panel = cell * m.size;
  const gap = 12;
  const digitW = 28 * 3;
  const panelX = (k: number) => M + digitW + gap + k * (panel + gap);
  const top = M + LINE + 6;
  const width = panelX(3) - gap + M;
  const height = top + panel + 8 + LINE + 6 + 7 + 8 + 16 + M;
  const r = new Raster(width, height);

  r.text(M, M, 'CLEAN', FONT, BLACK);
  ['SUBSTITUTE', 'VICTIM', 'DIFFER'].forEach((t, k) => r.text(panelX(k), M, t, FONT, BLACK));
  r.digit(M, top, m.image, 0, 3);
  [`TRUE ${m.trueLabel}`, `SUB ${m.substituteLabel}`, `VIC ${m.victimLabel}`].forEach((t, k) =>
    r.text(M, top + digitW + 6 + k * (LINE + 4), t, FONT, DARK),
  );

  const panels: ((i: number) => Rgb)[] = [
    (i) => CLASS_COLOURS[m.substitute[i]] ?? GREY,
    (i) => CLASS_COLOURS[m.victim[i]] ?? GREY,
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
  drawLegend(r, panelX(0), y, 16);
  return save(runDir, name, r);
}

export interface GridOptions {
  /** ε columns wanted; the nearest ε of the run is used for each (default 0.1, 0.2, 0.3). */
  epsilons?: number[];
  /** Rows (images), chosen one per true class in turn (default 10). */
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

/** Up to `rows` images, cycling through the true classes so every digit appears; `usable` filters. */
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
 * per chosen image: its true label (targeted: true>target) at the left, then the clean digit and
 * its adversarial versions, each ×3, each with a bar under it in the colour of the victim's label and
 * the label's digit; a red frame marks the adversarial images that worked on the victim (untargeted:
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
  const rows = chooseRows(truth, opts.rows ?? 10, (i) =>
    mode === 'targeted' ? targets[i] !== truth[i] : clean[i] === truth[i],
  );
  if (rows.length === 0) return null;

  const img = 28 * 3 + 4; // digit plus its 2-px frame
  const bar = LINE + 2;
  const gap = 10;
  const labelW = textWidth('0>0', FONT) + 6;
  const colX = (k: number) => M + labelW + k * (img + gap);
  const rowH = img + bar + gap;
  const head = M + LINE + 8;
  const top = head + LINE + 6;
  const width = colX(columns.length + 1) - gap + M;
  const height = top + rows.length * rowH + 7 + 8 + 16 + M;
  const r = new Raster(width, height);

  const title = mode === 'targeted' ? 'TARGETED  ROW: TRUE>TARGET' : 'UNTARGETED  ROW: TRUE LABEL';
  r.text(M, M, title, FONT, BLACK);
  r.text(colX(0), head, 'CLEAN', FONT, BLACK);
  columns.forEach((e, k) => r.text(colX(k + 1), head, `ε ${epsilons[e].toFixed(2)}`, FONT, BLACK));

  const cellAt = (x: number, y: number, pixels: Float32Array, i: number, label: number, worked: boolean) => {
    r.frame(x, y, img, img, 2, worked ? RED : GREY);
    r.digit(x + 2, y + 2, pixels, i * IMAGE_SIZE, 3);
    const colour = CLASS_COLOURS[label] ?? GREY;
    r.fill(x, y + img, img, bar, colour);
    r.text(x + (img - 5 * FONT) / 2, y + img + 1, String(label), FONT, contrastOn(colour));
  };
  rows.forEach((i, k) => {
    const y = top + k * rowH;
    const rowLabel = mode === 'targeted' ? `${truth[i]}>${targets[i]}` : String(truth[i]);
    r.text(M, y + img / 2 - LINE / 2, rowLabel, FONT, BLACK);
    cellAt(colX(0), y, evalSet.images, i, clean[i], false);
    columns.forEach((e, c) => {
      const label = outcome.victimLabels[mode][e][i];
      const worked = mode === 'targeted' ? label === targets[i] : label !== truth[i];
      cellAt(colX(c + 1), y, outcome.adversarial[mode][e], i, label, worked);
    });
  });
  const y = top + rows.length * rowH;
  r.text(M, y, 'BAR: VICTIM LABEL   RED FRAME: ATTACK WORKED ON THE VICTIM', 1, DARK);
  drawLegend(r, M, y + 7 + 8, 16);
  return r;
}

/** Write grid-untargeted.png and grid-targeted.png; returns their paths relative to runDir. */
export function writeImageGrids(runDir: string, extras: ResultExtras, opts: GridOptions = {}): string[] {
  const paths: string[] = [];
  for (const mode of ['untargeted', 'targeted'] as const) {
    const r = drawGrid(extras, mode, opts);
    if (r) paths.push(save(runDir, `grid-${mode}.png`, r));
  }
  return paths;
}
