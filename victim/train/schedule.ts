/**
 * Learning-rate schedules over the run's progress p ∈ [0, 1]. The one-cycle (triangular) schedule is
 * Wong, Rice & Kolter's: up linearly from 0 to the peak at 2/5 of the run, then down to 0. Fast
 * adversarial training depends on it — the large middle rates cover ground in few epochs, and the
 * long decay settles the model before the end.
 */
export const SCHEDULES = ['constant', 'one-cycle'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

const PEAK_AT = 0.4;

export function oneCycle(peak: number): (p: number) => number {
  return (p) => {
    const t = Math.min(Math.max(p, 0), 1);
    return t <= PEAK_AT ? (peak * t) / PEAK_AT : (peak * (1 - t)) / (1 - PEAK_AT);
  };
}

export function scheduleOf(name: ScheduleName, peak: number): (p: number) => number {
  return name === 'one-cycle' ? oneCycle(peak) : () => peak;
}
