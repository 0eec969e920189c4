import { describe, expect, it } from 'vitest';
import { BASES, TRAININGS, reusableMembers, trainingSettings } from '../scripts/experiment-transfer.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { chooseMembers } from '../scripts/transfer-lab.js';
import { TransferlabError } from '../shared/errors.js';

describe('transfer lab settings', () => {
  it('an ensemble takes over only the base members it would train identically', () => {
    // paper-x5 = paper-x3 plus two: members 2 and 3 are the same architecture, seeds and rounds.
    expect(reusableMembers('paper-x3', 'paper-x5')).toEqual([2, 3]);
    expect(reusableMembers('paper-x3', 'paper-mix5')).toEqual([2, 3]);
    // Fewer rounds, or a single-model base: nothing to take over.
    expect(reusableMembers('paper-x3', 'paper-x3-r5')).toEqual([]);
    expect(reusableMembers('paper', 'paper-x3')).toEqual([]);
    // A member's seeds depend on its place: mixed-x3's member 2 is a substitute-cnn, its member 3 paper-x3's.
    expect(reusableMembers('paper-x3', 'mixed-x3')).toEqual([3]);
    // Snapshots are read back, not trained: adding one changes no member.
    expect(reusableMembers('paper-ls0.1-x3', 'paper-ls0.1-x3-r5snap')).toEqual([2, 3]);
    expect(reusableMembers('paper-ls0.1-x3', 'paper-ls0.1-x2-r5snap')).toEqual([2]);
  });

  it('an unset field keeps the meaning it was measured with, whatever the campaign default is now', () => {
    expect(resolveConfig(trainingSettings('sub'))).toMatchObject({ substitute: 'substitute-cnn', labelSmoothing: 0 });
    expect(resolveConfig(trainingSettings('paper-ls0.1'))).toMatchObject({ substitute: 'paper-cnn', labelSmoothing: 0.1 });
  });

  it('every base names a known training setting', () => {
    for (const [train, base] of Object.entries(BASES)) {
      expect(TRAININGS[train], train).toBeDefined();
      expect(TRAININGS[base], base).toBeDefined();
    }
  });

  it('picks members by number, the first k, or all; refuses a member that does not exist', () => {
    const models = ['a', 'b', 'c', 'd', 'e'];
    expect(chooseMembers(models, { name: 'x', pick: [1, 4, 5] }, 't')).toEqual(['a', 'd', 'e']);
    expect(chooseMembers(models, { name: 'x', members: 2 }, 't')).toEqual(['a', 'b']);
    expect(chooseMembers(models, { name: 'x' }, 't')).toEqual(models);
    expect(() => chooseMembers(models, { name: 'x', pick: [1, 6] }, 't')).toThrow(TransferlabError);
    expect(() => chooseMembers(models, { name: 'x', pick: [0] }, 't')).toThrow(/cannot pick \[0\]/);
    expect(() => chooseMembers(models, { name: 'x', pick: [] }, 't')).toThrow(TransferlabError);
  });
});
