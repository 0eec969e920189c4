import { describe, expect, it } from 'vitest';
import { seconds } from '../adversary/report/html.js';

describe('report number formatting', () => {
  it('rounds durations before splitting minutes from seconds', () => {
    expect(seconds(179.6)).toBe('3 min 0 s');
    expect(seconds(125.2)).toBe('2 min 5 s');
    expect(seconds(59.94)).toBe('59.9 s');
    expect(seconds(null)).toBe('—');
  });
});
