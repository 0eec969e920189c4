import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../shared/errors.js';
import { loadModel, saveModel } from '../shared/model-io.js';

/**
 * A campaign's run folder: the resolved config, the oracle's ledger and answer cache, one
 * checkpoint per substitute round, and the results. Everything is written by
 * write-then-rename so an interrupted run never leaves a file that looks complete but is not.
 */
export interface RoundRecord {
  round: number;
  substituteSize: number;
  attackQueries: number;
  substituteAccuracy: number;
  agreement: number;
  lambda: number;
  trainSeconds: number;
  augmentSeconds: number;
}

export interface Checkpoint {
  record: RoundRecord;
  images: Float32Array;
  labels: Int32Array;
  model: tf.LayersModel;
}

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

export function readJson<T>(path: string): T {
  if (!existsSync(path)) throw new TransferlabError('run_incomplete', `${path} not found`);
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

const roundDir = (run: string, round: number) => join(run, 'checkpoints', `round-${String(round).padStart(2, '0')}`);

/** `dataset`: the attacker's dataset, whose images the substitute was trained on (labelled by the victim). */
export async function saveCheckpoint(run: string, c: Checkpoint, arch: string, dataset: string): Promise<void> {
  const dir = roundDir(run, c.record.round);
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await saveModel(c.model, join(tmp, 'substitute'), { arch, dataset, round: c.record.round });
  writeFileSync(join(tmp, 'images.f32'), new Uint8Array(c.images.buffer, c.images.byteOffset, c.images.byteLength));
  writeFileSync(join(tmp, 'labels.i32'), new Uint8Array(c.labels.buffer, c.labels.byteOffset, c.labels.byteLength));
  writeFileSync(join(tmp, 'round.json'), JSON.stringify(c.record, null, 2) + '\n');
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

/** The latest complete checkpoint, or undefined when none was finished. */
export async function latestCheckpoint(run: string): Promise<Checkpoint | undefined> {
  const base = join(run, 'checkpoints');
  if (!existsSync(base)) return undefined;
  const rounds = readdirSync(base)
    .filter((d) => /^round-\d+$/.test(d) && existsSync(join(base, d, 'round.json')))
    .sort();
  const last = rounds.at(-1);
  if (!last) return undefined;
  const dir = join(base, last);
  const record = readJson<RoundRecord>(join(dir, 'round.json'));
  const imgBytes = readFileSync(join(dir, 'images.f32'));
  const lblBytes = readFileSync(join(dir, 'labels.i32'));
  const images = new Float32Array(imgBytes.buffer.slice(imgBytes.byteOffset, imgBytes.byteOffset + imgBytes.byteLength));
  const labels = new Int32Array(lblBytes.buffer.slice(lblBytes.byteOffset, lblBytes.byteOffset + lblBytes.byteLength));
  const { model } = await loadModel(join(dir, 'substitute'));
  return { record, images, labels, model };
}

/** Earlier rounds' records, for a resumed run's results. */
export function roundRecords(run: string): RoundRecord[] {
  const base = join(run, 'checkpoints');
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((d) => /^round-\d+$/.test(d) && existsSync(join(base, d, 'round.json')))
    .sort()
    .map((d) => readJson<RoundRecord>(join(base, d, 'round.json')));
}
