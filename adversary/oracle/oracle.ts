/**
 * What the adversary knows of the victim: its label API, and nothing else. Every image sent
 * is paid for; the purpose tag keeps what the adversary pays to build its substitute apart
 * from what the simulator spends to score the attack (ARCHITECTURE.md).
 */
export type QueryPurpose = 'attack' | 'measurement';

export interface QueryCounts {
  attack: number;
  measurement: number;
  /** Answers served from the run's cache: not sent, not paid for. */
  cached: number;
}

import type { VictimInfo } from '../../shared/protocol/index.js';

export type { VictimInfo };

export interface LabelOracle {
  info(): Promise<VictimInfo>;
  /**
   * Labels for `count` images given as float32 in [0,1], row-major count×H×W×C (info().inputShape). Images are sent
   * quantised to 8 bits unless the oracle was built for float32.
   */
  label(images: Float32Array, count: number, purpose: QueryPurpose): Promise<Int32Array>;
  counts(): QueryCounts;
  close(): Promise<void>;
}
