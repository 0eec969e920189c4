import { describe, expect, it } from 'vitest';
import { TransferlabError } from '../shared/errors.js';
import { accuracy, agreement, confusionMatrix, misclassificationRate, perClassMisclassification, perClassTransfer, sweepRow, targetedSuccessRate, transferRate } from '../shared/metrics.js';
import { median, pearson } from '../shared/statistics.js';

const I = (xs: number[]): Int32Array => Int32Array.from(xs);

describe('rates over label arrays', () => {
  const truth = I([0, 1, 2, 3, 4]);
  const clean = I([0, 1, 2, 9, 9]); // victim right on the first three only
  const adv = I([0, 7, 7, 3, 9]); // fools 1 and 2; image 3 is "fixed" by the attack, image 4 stays wrong

  it('accuracy and agreement', () => {
    expect(accuracy(clean, truth)).toBeCloseTo(3 / 5);
    expect(agreement(clean, adv)).toBeCloseTo(2 / 5); // indices 0 and 4
    expect(agreement(I([1, 2]), [1, 2])).toBe(1);
  });

  it('misclassification counts every wrong adversarial label', () => {
    expect(misclassificationRate(adv, truth)).toBeCloseTo(3 / 5); // 1, 2, 4
  });

  it('transfer rate only counts images the victim got right when clean', () => {
    // eligible = {0, 1, 2}; fooled among them = {1, 2}
    expect(transferRate(adv, clean, truth)).toBeCloseTo(2 / 3);
    expect(transferRate(truth, truth, truth)).toBe(0);
  });

  it('empty denominators give null, not NaN', () => {
    const none = I([]);
    expect(accuracy(none, none)).toBeNull();
    expect(agreement(none, none)).toBeNull();
    expect(misclassificationRate(none, none)).toBeNull();
    expect(transferRate(none, none, none)).toBeNull();
    expect(targetedSuccessRate(none, none)).toBeNull();
    // victim wrong on every clean image: nothing can transfer
    expect(transferRate(I([1, 1]), I([2, 2]), I([0, 0]))).toBeNull();
    // every image already of the target class
    expect(targetedSuccessRate(I([3, 3]), I([3, 3]), I([3, 3]))).toBeNull();
  });

  it('targeted success, with and without excluding images already of the target class', () => {
    const targets = I([0, 5, 5, 5]);
    const advPred = I([0, 5, 1, 5]);
    const t = I([0, 1, 2, 3]);
    expect(targetedSuccessRate(advPred, targets)).toBeCloseTo(3 / 4);
    expect(targetedSuccessRate(advPred, targets, t)).toBeCloseTo(2 / 3); // image 0 left out
  });

  it('mismatched lengths throw a TransferlabError', () => {
    expect(() => accuracy(I([1]), I([1, 2]))).toThrow(TransferlabError);
    expect(() => transferRate(I([1]), I([1]), I([1, 2]))).toThrow(/differ in length/);
  });

  it('sweepRow bundles the three measures', () => {
    expect(sweepRow(0.3, adv, clean, truth)).toEqual({
      epsilon: 0.3,
      misclassificationRate: 3 / 5,
      transferRate: 2 / 3,
      targetedSuccessRate: null,
    });
    expect(sweepRow(0.1, I([5, 5]), I([0, 1]), I([0, 1]), I([5, 6])).targetedSuccessRate).toBe(0.5);
  });
});

describe('per-class views', () => {
  it('confusion matrix rows are truth, columns predictions', () => {
    const m = confusionMatrix(I([0, 0, 1, 2, 2, 2]), I([0, 1, 1, 2, 0, 2]), 3);
    expect(m).toEqual([
      [1, 1, 0],
      [0, 1, 0],
      [1, 0, 2],
    ]);
    expect(() => confusionMatrix(I([3]), I([0]), 3)).toThrow(TransferlabError);
    expect(confusionMatrix(I([]), I([]), 2)).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });

  it('per-class misclassification and transfer, null for absent classes', () => {
    const truth = I([0, 0, 1, 1]);
    const clean = I([0, 1, 1, 1]);
    const adv = I([2, 2, 1, 0]);
    expect(perClassMisclassification(adv, truth, 3)).toEqual([1, 0.5, null]);
    // class 0: only image 0 eligible, fooled → 1; class 1: both eligible, one fooled → 0.5
    expect(perClassTransfer(adv, clean, truth, 3)).toEqual([1, 0.5, null]);
    expect(perClassTransfer(adv, I([1, 1, 0, 0]), truth, 3)).toEqual([null, null, null]);
  });
});

describe('statistics helpers', () => {
  it('pearson', () => {
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1);
    expect(pearson([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(0.8);
    expect(pearson([1], [1])).toBeNull();
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNull();
    // large offset: a one-pass formula would lose the signal here
    expect(pearson([1e8 + 1, 1e8 + 2, 1e8 + 3], [1, 2, 3])).toBeCloseTo(1);
  });

  it('median', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median(Float32Array.from([4, 1, 3, 2]))).toBe(2.5);
    expect(median([-1, -10, 5])).toBe(-1);
    expect(median([])).toBeNull();
    expect(() => median([1, Number.NaN])).toThrow(TransferlabError);
  });
});
