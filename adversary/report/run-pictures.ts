import { pixelCount, type ImageSet } from '../../shared/datasets/types.js';
import type { BoundaryResults, MeasuredBoundary } from '../campaign/boundary.js';
import { boundaryMapPng, IMAGES_DIR, imageGridPngs, type GridOptions, type ResultExtras } from './pictures.js';
import type { RunStore } from '../run/store.js';

/**
 * The run's pictures, drawn from what the campaign measured and filed in its store under images/
 * (the paths results.json records, relative to the run folder).
 */

/** Draws each boundary map; returns the boundary results with the maps' picture paths. */
export function writeBoundaryMaps(store: RunStore, measured: MeasuredBoundary, evalSet: ImageSet, classes: number): BoundaryResults {
  const size = pixelCount(evalSet.shape);
  const maps = measured.maps.map(({ caption, ...m }, k) => {
    const path = `${IMAGES_DIR}/boundary-map-${k + 1}.png`;
    const png = boundaryMapPng({
      ...m,
      image: evalSet.images.slice(m.index * size, (m.index + 1) * size),
      shape: evalSet.shape,
      classes,
      size: m.grid,
      substitute: m.substituteLabels,
      victim: m.victimLabels,
    });
    store.write(path, png);
    return { ...m, image: path, caption };
  });
  return { ...measured, maps };
}

/** Draws grid-untargeted.png and grid-targeted.png; returns their paths. */
export function writeImageGrids(store: RunStore, extras: ResultExtras, opts: GridOptions = {}): string[] {
  return imageGridPngs(extras, opts).map(({ name, png }) => {
    const path = `${IMAGES_DIR}/${name}`;
    store.write(path, png);
    return path;
  });
}
