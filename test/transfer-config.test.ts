import { describe, expect, it } from 'vitest';
import { resolveConfig, substituteMembers } from '../adversary/campaign/config.js';
import { campaignFromFlags } from '../adversary/cli/settings.js';
import { sweepSettings } from '../adversary/campaign/transfer.js';
import { TransferlabError } from '../shared/errors.js';

describe('transfer settings', () => {
  it('a substitute list is an ensemble; one name an ensemble of one', () => {
    expect(substituteMembers(resolveConfig({}))).toEqual(['paper-cnn']);
    const c = resolveConfig({ substitute: ['paper-cnn', 'substitute-cnn'], combine: 'loss' });
    expect(substituteMembers(c)).toEqual(['paper-cnn', 'substitute-cnn']);
    expect(c.combine).toBe('loss');
  });

  it('flags reach the config: several --substitute values, the loss, DI, TI, temperatures, --no-targeted', () => {
    const flags = campaignFromFlags({
      substitute: ['paper-cnn', 'paper-cnn'],
      loss: 'margin',
      diversity: 0.5,
      'diversity-samples': 4,
      'ti-kernel': 7,
      'craft-temperature': 10,
      'label-smoothing': 0.1,
      temperature: 2,
      targeted: false,
    });
    const c = resolveConfig(flags);
    expect(c).toMatchObject({ substitute: ['paper-cnn', 'paper-cnn'], loss: 'margin', diversity: 0.5, diversitySamples: 4, tiKernel: 7, craftTemperature: 10, labelSmoothing: 0.1, temperature: 2, targeted: false });
    expect(resolveConfig(campaignFromFlags({ substitute: ['lenet'] })).substitute).toBe('lenet');
    expect(sweepSettings(c).gradient).toEqual({ loss: 'margin', diversity: 0.5, diversityScale: 0.86, diversitySamples: 4, tiKernel: 7, temperature: 10 });
  });

  it('lists every bad transfer setting at once', () => {
    let error: unknown;
    try {
      resolveConfig({ substitute: ['paper-cnn', 'resnet'], combine: 'max', loss: 'hinge', diversity: -0.1, tiKernel: 6, labelSmoothing: 1, temperature: 0, craftTemperature: -1 } as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TransferlabError);
    const message = (error as Error).message;
    for (const field of ['substitute', 'combine', 'loss', 'diversity', 'tiKernel', 'labelSmoothing', 'temperature', 'craftTemperature']) expect(message).toContain(field);
    expect(() => resolveConfig({ substitute: Array(6).fill('lenet') })).toThrow(/substitute/);
  });
});
