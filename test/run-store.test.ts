/**
 * The two run stores answer alike: whatever a campaign does through one, it finds through the other
 * (test/campaign.test.ts runs a whole campaign on each). The file store is a real temporary folder.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileRunStore, getJson, memoryRunStore, putJson, type RunStore } from '../adversary/run/store.js';

const root = mkdtempSync(join(tmpdir(), 'transferlab-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

/** The same operations on a store, and what they showed. */
function exercise(store: RunStore): unknown[] {
  const seen: unknown[] = [];
  seen.push(store.exists('config.json'), store.list('checkpoints'), store.read('missing.json'));
  putJson(store, 'config.json', { seed: 3 });
  store.writeFolder('checkpoints/round-01', { 'round.json': '{"round":1}\n', 'substitute/model.json': '{}' });
  store.writeFolder('checkpoints/round-02', { 'round.json': '{"round":2}\n' });
  // A folder written again holds exactly its new files.
  store.writeFolder('checkpoints/round-01', { 'round.json': '{"round":1,"again":true}\n' });
  seen.push(getJson(store, 'config.json'), store.list('checkpoints'), store.list('checkpoints/round-01'));
  seen.push(store.exists('checkpoints'), store.exists('checkpoints/round-01/substitute/model.json'), text(store.read('checkpoints/round-01/round.json')));
  const first = store.openLog('answers.jsonl', { torn: 'drop' });
  first.log.appendNow([{ h: 'a', l: 1 }, { h: 'b', l: 2 }]);
  first.log.close();
  const again = store.openLog('answers.jsonl', { torn: 'drop' });
  again.log.appendNow([{ h: 'c', l: 3 }]);
  again.log.close();
  const third = store.openLog('answers.jsonl', { torn: 'drop' });
  third.log.close();
  seen.push(first.records, again.records, again.lines, third.records.length);
  seen.push(text(store.createOnce('oracle-id', 'first\n')), text(store.createOnce('oracle-id', 'second\n')));
  store.write('images/grid.png', new Uint8Array([137, 80, 78, 71]));
  seen.push(Array.from(store.read('images/grid.png') ?? []), store.list(''));
  expect(() => getJson(store, 'results.json')).toThrow(/results\.json not found/);
  return seen;
}

describe('run stores', () => {
  it('the file store and the memory store give the same answers, and only the file store touches the disk', () => {
    const before = readdirSync(root);
    const memory = exercise(memoryRunStore('m'));
    expect(readdirSync(root)).toEqual(before);
    const dir = join(root, 'run');
    expect(exercise(fileRunStore(dir))).toEqual(memory);
    expect(existsSync(join(dir, 'checkpoints', 'round-01', 'substitute'))).toBe(false);
    expect(readdirSync(join(dir, 'checkpoints'))).toEqual(['round-01', 'round-02']); // no .partial left behind
    expect(memory[2]).toBeUndefined();
    expect(memory.slice(3, 9)).toEqual([{ seed: 3 }, ['round-01', 'round-02'], ['round.json'], true, false, '{"round":1,"again":true}\n']);
    expect(memory.slice(9, 15)).toEqual([[], [{ h: 'a', l: 1 }, { h: 'b', l: 2 }], [1, 2], 3, 'first\n', 'first\n']);
    expect(memory[16]).toEqual(['answers.jsonl', 'checkpoints', 'config.json', 'images', 'oracle-id']);
  });

  it('names a path on disk as the folder does, and one in memory by the run', () => {
    const dir = join(root, 'named');
    expect(fileRunStore(dir).where('results.json')).toBe(join(dir, 'results.json'));
    expect(fileRunStore(dir).name).toBe('named');
    expect(memoryRunStore('m').where('images/a.png')).toBe('memory:m/images/a.png');
  });

  it('on disk, a log keeps shared/jsonl-log.ts\'s rule: a torn last line is dropped on the next open', () => {
    const dir = join(root, 'torn');
    const store = fileRunStore(dir);
    store.openLog('answers.jsonl', { torn: 'drop' }).log.close();
    writeFileSync(join(dir, 'answers.jsonl'), '{"h":"a","l":1}\n{"h":"b"');
    const opened = store.openLog('answers.jsonl', { torn: 'drop' });
    opened.log.close();
    expect(opened.records).toEqual([{ h: 'a', l: 1 }]);
  });
});
