/**
 * The folders are layers (scripts/layers.ts): shared/ imports no other folder (and its sub-folders none of
 * the rest of it), victim/ and adversary/ never import each other, and no import cycle exists anywhere.
 */
import { describe, expect, it } from 'vitest';
import { cycles, importGraph, violations, type Graph } from '../scripts/layers.js';

const graph = (edges: Record<string, string[]>): Graph => new Map(Object.entries(edges).map(([k, v]) => [k, new Set(v)]));

describe('layers', () => {
  const real = importGraph();

  it('the repository has no import that goes up a layer or to a peer (allow-list aside)', () => {
    expect(real.size).toBeGreaterThan(50);
    expect(violations(real)).toEqual([]);
  });

  it('the repository has no import cycle', () => {
    expect(cycles(real)).toEqual([]);
  });

  it('the checks catch a peer import, an upward import and a cycle', () => {
    const g = graph({
      'victim/http/app.ts': ['adversary/oracle/oracle.ts', 'shared/model/model.ts'],
      'shared/model/model.ts': ['scripts/demo.ts'],
      'adversary/a.ts': ['adversary/b.ts'],
      'adversary/b.ts': ['adversary/c.ts'],
      'adversary/c.ts': ['adversary/a.ts'],
      'scripts/demo.ts': ['victim/http/app.ts', 'adversary/a.ts', 'shared/model/model.ts'],
      'shared/engine/backend.ts': ['shared/engine/wasm-kernels.ts', 'shared/errors.ts', 'shared/model/model.ts', 'shared/protocol/index.ts'],
    });
    expect(violations(g, []).map((v) => `${v.from} -> ${v.to}`)).toEqual([
      'victim/http/app.ts -> adversary/oracle/oracle.ts',
      'shared/model/model.ts -> scripts/demo.ts',
      'shared/engine/backend.ts -> shared/model/model.ts',
      'shared/engine/backend.ts -> shared/protocol/index.ts',
    ]);
    expect(violations(g, [['victim/http/app.ts', 'adversary']]).map((v) => v.from)).toEqual(['shared/model/model.ts', 'shared/engine/backend.ts', 'shared/engine/backend.ts']);
    expect(cycles(g)).toContainEqual(['adversary/a.ts', 'adversary/b.ts', 'adversary/c.ts']);
  });

  it('inside victim/ and adversary/, a lower sub-folder never imports a higher one', () => {
    const g = graph({
      'adversary/oracle/core.ts': ['adversary/run/store.ts', 'adversary/campaign/config.ts'],
      'adversary/campaign/steps.ts': ['adversary/oracle/core.ts', 'adversary/report/pictures.ts'],
      'victim/store/ledger.ts': ['victim/http/app.ts', 'victim/detect/prada.ts'],
      'adversary/cli.ts': ['adversary/queue/cli.ts'],
    });
    expect(violations(g, []).map((v) => `${v.from} -> ${v.to}`)).toEqual(['adversary/oracle/core.ts -> adversary/campaign/config.ts', 'victim/store/ledger.ts -> victim/http/app.ts']);
  });
});
