/**
 * The victim's training recipes: the quick default, the seed paper's setting kept as `--recipe paper`,
 * the robust defaults under adversarial training, and the one-cycle rate the quick recipe runs on.
 */
import { describe, expect, it } from 'vitest';
import { oneCycle, scheduleOf } from '../victim/train/schedule.js';
import { readDemoOutput } from '../scripts/bench-demo.js';
import { PAPER_RECIPE, QUICK_RECIPE, ROBUST_DEFAULTS, trainingDefaults, VICTIM_DEFAULTS } from '../victim/train/train.js';

describe('victim training recipes', () => {
  it('trains the quick recipe by default and keeps the seed paper\'s 8 epochs at a constant 1e-3 as --recipe paper', () => {
    expect(trainingDefaults({})).toEqual({ ...VICTIM_DEFAULTS, ...QUICK_RECIPE });
    expect(VICTIM_DEFAULTS).toMatchObject(QUICK_RECIPE);
    expect(trainingDefaults({ recipe: 'paper' })).toMatchObject({ arch: 'paper-cnn', epochs: 8, batchSize: 128, learningRate: 0.001, schedule: 'constant' });
    expect(PAPER_RECIPE.epochs).toBe(8);
    expect(QUICK_RECIPE.epochs).toBeLessThan(PAPER_RECIPE.epochs);
  });

  it('uses the robust defaults under adversarial training and refuses a plain recipe there', () => {
    expect(trainingDefaults({ robust: true })).toMatchObject(ROBUST_DEFAULTS);
    expect(() => trainingDefaults({ robust: true, recipe: 'paper' })).toThrow(/--recipe paper is a plain-training recipe/);
    expect(() => trainingDefaults({ recipe: 'fast' })).toThrow(/--recipe must be one of quick, paper \(got fast\)/);
  });

  it('one-cycle rises linearly to its peak at 2/5 of the run and falls linearly to 0 at the end', () => {
    const f = oneCycle(0.005);
    expect(f(0)).toBe(0);
    expect(f(0.2)).toBeCloseTo(0.0025, 12);
    expect(f(0.4)).toBeCloseTo(0.005, 12);
    expect(f(0.7)).toBeCloseTo(0.0025, 12);
    expect(f(1)).toBe(0);
    // Outside the run it holds its end values rather than going negative.
    expect(f(-0.1)).toBe(0);
    expect(f(1.5)).toBe(0);
    expect(scheduleOf('constant', 0.001)(0.63)).toBe(0.001);
  });
});

describe("the bench's reading of a demo's output", () => {
  it('takes the training, the demo totals and the CPU seconds from the lines demo.ts and GNU time print', () => {
    const fresh = [
      '== 0. no victim for mnist yet: training the default paper-cnn into models/victim (once; 4 epochs, batch 256, one-cycle rate peaking at 0.008) ==',
      'test accuracy 0.9903 in 88.4 s; saved to models/victim',
      'demo finished in 141 s (49 s after the victim was ready)',
      'cpu 231.50 9.25',
    ].join('\n');
    expect(readDemoOutput(fresh)).toEqual({ cpuSeconds: 240.8, demoSeconds: 141, afterVictimReadySeconds: 49, trainingSeconds: 88.4, testAccuracy: 0.9903 });
    // Trained already, and no GNU time on the machine: those figures are null, never 0.
    expect(readDemoOutput('demo finished in 52 s (50 s after the victim was ready)')).toEqual({
      cpuSeconds: null, demoSeconds: 52, afterVictimReadySeconds: 50, trainingSeconds: null, testAccuracy: null,
    });
  });
});
