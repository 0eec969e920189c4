import { planOf, type QueryPlan } from '../run/query-plan.js';
import type { CampaignConfig } from './config.js';

/** A campaign's planned victim queries by purpose, from its settings alone (upper bounds where answers decide). */
/** Coarse first-flip scan to ε 1 in steps of 16/255 (16 probes), then 4 bisection probes: shared/boundary.ts. */
const FLIP_PROBES_PER_IMAGE = 16 + 4;
/** The built-in datasets' test parts hold 10,000 images; a folder's count is checked when it is loaded. */
const TEST_IMAGES = 10_000;

/** Images the victim labels for the substitute: the seed set, then each round's augmentation but the last's. */
export function attackImages(c: Pick<CampaignConfig, 'seedSize' | 'rounds' | 'reservoir'>): number {
  let size = c.seedSize;
  for (let round = 0; round < c.rounds - 1; round++) size += c.reservoir === undefined ? size : Math.min(size, c.reservoir);
  return size;
}

export function campaignPlan(c: CampaignConfig): QueryPlan {
  const evalCount = Math.min(c.evalSize, TEST_IMAGES - c.seedSize);
  const b = c.boundary;
  const on = b.enabled;
  const flips = on ? Math.min(b.images, evalCount) : 0;
  const rays = on ? Math.min(b.rays.images, evalCount) : 0;
  const modes = c.targeted ? 2 : 1;
  return planOf([
    { purpose: 'attack', what: 'seed set and augmentation rounds', queries: attackImages(c), atMost: false },
    { purpose: c.craftLabel === 'oracle' ? 'attack' : 'measurement', what: 'clean evaluation labels', queries: evalCount, atMost: false },
    { purpose: 'measurement', what: 'transfer sweep', queries: modes * c.epsilons.length * evalCount, atMost: false },
    { purpose: 'measurement', what: 'boundary first flips', queries: flips * FLIP_PROBES_PER_IMAGE, atMost: true },
    { purpose: 'measurement', what: 'nearest boundary (RayS)', queries: rays * b.rays.queries, atMost: true },
    { purpose: 'measurement', what: 'boundary maps', queries: on ? b.maps * b.grid * b.grid : 0, atMost: false },
  ]);
}

