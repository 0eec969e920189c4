/**
 * What a query attack does against a stateful detector (Blacklight, PRADA) besides asking: the
 * attackers of Feng et al., "Stateful defenses for machine learning models are not yet secure"
 * (CCS 2023), as settings of the lock-step runner (search.ts).
 *
 * - Query blinding (Chen, Carlini & Wagner 2019): every probe is passed through a random small
 *   transform before it is sent — a shift of up to ±2 pixels, a brightness offset, and uniform noise
 *   as large as the ε budget the probe has left (ε − its L∞ distance to the clean image) — so two
 *   probes the search makes alike reach the victim less alike. The answer stands for the probe.
 * - Adaptive rejection sampling, in the spirit of OARS: a probe the victim refuses (403
 *   query_rejected) is sent again as probe + uniform noise of scale σ, up to `maxResamples` times; σ
 *   is learned from what the victim accepted and refused — ×UP after a refusal, ×UP^(−p/(1−p))
 *   after an acceptance, so it settles where about a share p of resamples is refused (OARS searches
 *   the noise scale at which at most 5 % of noisy queries hit the detector's cache). The accepted
 *   resample's answer stands for the probe.
 * Both change only what is sent; the search still sees, and records, its own probes, so the best
 * example's label is the victim's answer to a nearby query: an experiment checks it on the model
 * (scripts/experiment-detectors.ts).
 */
import { createRng } from '../../shared/random.js';

export interface EvasionSettings {
  blinding: boolean;
  adaptive: boolean;
  /** The L∞ budget blinding's noise stays within (the ε success is counted at). */
  epsilon: number;
  seed: number;
  /** Resamples of one refused probe before it is given up (seen as not adversarial). */
  maxResamples?: number;
  /** Image shape [h, w, c], for blinding's shift. */
  shape: readonly number[];
}

/** Blinding's largest shift (pixels) and brightness offset (of the [0, 1] range). */
const SHIFT = 2;
const BRIGHTNESS = 0.03;
/** OARS's tolerated share of noisy queries that hit the detector. */
const TARGET_REFUSALS = 0.05;
const UP = 1.5;
const SIGMA = { start: 0.05, min: 0.01, max: 0.5 };

export class ProbeShaper {
  private readonly rng: () => number;
  /** The resampling noise scale learned so far. */
  sigma = SIGMA.start;
  readonly maxResamples: number;

  constructor(readonly s: EvasionSettings) {
    this.rng = createRng(s.seed ^ 0x51b1e5);
    this.maxResamples = s.maxResamples ?? 10;
  }

  get active(): boolean {
    return this.s.blinding || this.s.adaptive;
  }

  private uniform(r: number): number {
    return (this.rng() * 2 - 1) * r;
  }

  /** The probe as sent: blinded when blinding is on, else itself (quantised to 8 bits either way). */
  blind(probe: Float32Array, x: Float32Array): Float32Array {
    if (!this.s.blinding) return probe;
    const [h, w, c] = [this.s.shape[0], this.s.shape[1], this.s.shape[2] ?? 1];
    let linf = 0;
    for (let p = 0; p < probe.length; p++) linf = Math.max(linf, Math.abs(probe[p] - x[p]));
    const room = Math.max(0, this.s.epsilon - linf);
    const dy = Math.round(this.uniform(SHIFT));
    const dx = Math.round(this.uniform(SHIFT));
    const bright = this.uniform(BRIGHTNESS);
    const out = new Float32Array(probe.length);
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        const sy = y - dy;
        const sx = xx - dx;
        for (let k = 0; k < c; k++) {
          // Pixels shifted in from outside the frame are background (0).
          const v = sy >= 0 && sy < h && sx >= 0 && sx < w ? probe[(sy * w + sx) * c + k] : 0;
          out[(y * w + xx) * c + k] = quantise(v + bright + this.uniform(room));
        }
      }
    }
    return out;
  }

  /** A refused probe drawn again: probe + uniform noise of the learned scale. */
  resample(probe: Float32Array): Float32Array {
    return Float32Array.from(probe, (v) => quantise(v + this.uniform(this.sigma)));
  }

  /** What the victim did with a resample: the noise scale moves towards TARGET_REFUSALS refused. */
  learn(refused: boolean): void {
    const down = UP ** (-TARGET_REFUSALS / (1 - TARGET_REFUSALS));
    this.sigma = Math.min(SIGMA.max, Math.max(SIGMA.min, this.sigma * (refused ? UP : down)));
  }
}

function quantise(v: number): number {
  return Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * 255) / 255;
}
