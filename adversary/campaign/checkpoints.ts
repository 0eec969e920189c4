import type * as tf from '@tensorflow/tfjs';
import { TransferlabError } from '../../shared/errors.js';
import { MODEL_FILE_NAMES, modelFiles, modelFromFiles, type ModelMetadata } from '../../shared/model/model-io.js';
import { getJson, type RunStore } from '../run/store.js';

/**
 * What a campaign keeps between processes, in its run store: one checkpoint per finished
 * substitute round (checkpoints/round-NN/: the substitute, the labelled points, the round's record)
 * and the ensemble's other members (checkpoints/members/member-N/). A resumed run starts from the
 * latest complete round; each is written as one folder, so it is there whole or not at all.
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
  /** With threat topk/scores: the victim's probabilities of the same points (count × classes, NaN = not given). */
  scores?: Float32Array;
  model: tf.LayersModel;
}

const CHECKPOINTS = 'checkpoints';
const roundPath = (round: number) => `${CHECKPOINTS}/round-${String(round).padStart(2, '0')}`;
export const memberPath = (member: number) => `${CHECKPOINTS}/members/member-${member}`;

const rawBytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const copyOut = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** `dataset`: the attacker's dataset, whose images the substitute was trained on (labelled by the victim). */
export async function saveCheckpoint(store: RunStore, c: Checkpoint, arch: string, dataset: string): Promise<void> {
  const { files } = await modelFiles(c.model, { arch, dataset, round: c.record.round });
  store.writeFolder(roundPath(c.record.round), {
    ...Object.fromEntries(Object.entries(files).map(([name, data]) => [`substitute/${name}`, data])),
    'images.f32': rawBytes(c.images),
    'labels.i32': rawBytes(c.labels),
    ...(c.scores ? { 'scores.f32': rawBytes(c.scores) } : {}),
    'round.json': JSON.stringify(c.record, null, 2) + '\n',
  });
}

/** Finished rounds' folders, in order (a folder without its round.json was never finished). */
const finishedRounds = (store: RunStore) =>
  store.list(CHECKPOINTS).filter((d) => /^round-\d+$/.test(d) && store.exists(`${CHECKPOINTS}/${d}/round.json`));

/** The latest complete checkpoint, or undefined when none was finished. */
export async function latestCheckpoint(store: RunStore): Promise<Checkpoint | undefined> {
  const last = finishedRounds(store).at(-1);
  if (!last) return undefined;
  const dir = `${CHECKPOINTS}/${last}`;
  const record = getJson<RoundRecord>(store, `${dir}/round.json`);
  const need = (path: string) => {
    const data = store.read(path);
    if (!data) throw new TransferlabError('run_incomplete', `${store.where(path)} not found`);
    return copyOut(data);
  };
  const images = new Float32Array(need(`${dir}/images.f32`));
  const labels = new Int32Array(need(`${dir}/labels.i32`));
  const scoreBytes = store.read(`${dir}/scores.f32`);
  const scores = scoreBytes ? new Float32Array(copyOut(scoreBytes)) : undefined;
  const { model } = await modelFromFiles((name) => store.read(`${dir}/substitute/${name}`), store.where(`${dir}/substitute`));
  return { record, images, labels, scores, model };
}

/** Every finished round's record, for the results (a resumed run's included). */
export function roundRecords(store: RunStore): RoundRecord[] {
  return finishedRounds(store).map((d) => getJson<RoundRecord>(store, `${CHECKPOINTS}/${d}/round.json`));
}

/** The first member's substitute as it was after `round` (1-based), from that round's checkpoint. */
export async function loadRoundSubstitute(store: RunStore, round: number): Promise<tf.LayersModel> {
  const dir = `${roundPath(round)}/substitute`;
  if (!store.exists(`${roundPath(round)}/round.json`)) throw new TransferlabError('run_incomplete', `${store.where(roundPath(round))}: no finished round ${round} to take a snapshot from`);
  return (await modelFromFiles((name) => store.read(`${dir}/${name}`), store.where(dir))).model;
}

/** An ensemble member trained in an earlier process, or undefined. */
export async function loadMember(store: RunStore, member: number): Promise<tf.LayersModel | undefined> {
  if (!MODEL_FILE_NAMES.every((name) => store.exists(`${memberPath(member)}/${name}`))) return undefined;
  return (await modelFromFiles((name) => store.read(`${memberPath(member)}/${name}`), store.where(memberPath(member)))).model;
}

export async function saveMember(store: RunStore, member: number, model: tf.LayersModel, metadata: Omit<ModelMetadata, 'weightsSha256'>): Promise<void> {
  store.writeFolder(memberPath(member), (await modelFiles(model, metadata)).files);
}
