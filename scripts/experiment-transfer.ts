/**
 * Experiment: what raises transfer from the same labelled points — substitute ensembles, label
 * smoothing / temperature / epochs of the substitute's training, the crafting loss (cross-entropy or CW
 * margin), input diversity (DI), translation invariance (TI), momentum (MI-DI-FGSM).
 *
 * Each training setting is trained once (runs/experiment-transfer/substitutes/<name>/, resumable); every
 * attack setting is then crafted on the saved substitutes and scored by the victim (untargeted, 1,000
 * evaluation images). Writes transfer.json, transfer.csv and transfer.md (a Markdown table).
 *
 *   npm run experiment:transfer -- [--victim URL | --model DIR [--in-process]] [--train NAME…] [--attacks NAME…]
 */
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { describeBackend, initBackend } from '../shared/engine/backend.js';
import { isMain, runMain, failOnOneLine } from '../shared/cli.js';
import { backendOption, runningVictimOption } from '../shared/cli-options.js';
import { TransferlabError } from '../shared/errors.js';
import { loadModel } from '../shared/model/model-io.js';
import { fromLayers, labelImages } from '../shared/model/model.js';
import { provenance } from '../shared/versions.js';
import type { CampaignInput } from '../adversary/campaign/config.js';
import { createTargetOracle } from '../adversary/targets/oracle.js';
import { targetSettingsShape, type TargetSettingsInput } from '../adversary/targets/settings.js';
import { fileRunStore } from '../adversary/run/store.js';
import { inputFromFlags, schemaOptions } from '../shared/schema-flags.js';
import type { CountingOracle } from '../adversary/oracle/core.js';
import { oracleFromLabeler } from '../adversary/oracle/local-oracle.js';
import { spawnVictim, type VictimProcess } from '../victim/spawn.js';
import { attackTrained, labDir, labTable, trainedSubstitutes, type AttackSetting, type LabRow } from './transfer-lab.js';

const paperEpochs = [10, 10, 10, 10, 4, 2];
/**
 * What an unset field means in TRAININGS: the campaign defaults of before paper-cnn and label smoothing
 * became the default, so that every setting keeps the meaning its measured figures were taken with.
 */
export const LAB_DEFAULTS: CampaignInput = { substitute: 'substitute-cnn', labelSmoothing: 0 };
export const trainingSettings = (train: string): CampaignInput => ({ ...LAB_DEFAULTS, ...TRAININGS[train] });
/**
 * Training settings: each is one Papernot run (4,800 attack queries unless `rounds` says otherwise).
 * An ensemble's first member is trained exactly as the setting named in BASES, whose rounds it reuses.
 */
export const BASES: Record<string, string> = {
  'sub-x3': 'sub',
  'paper-x3': 'paper',
  'mixed-x3': 'paper',
  'paper-r5': 'paper',
  'paper-x3-r5': 'paper',
  'paper-x5': 'paper-x3',
  'paper-mix5': 'paper-x3',
  'paper-x5-r5': 'paper-x3-r5',
  'paper-mix5-r5': 'paper-x3-r5',
  'paper-sub4': 'paper-mix5',
  'paper-ls0.1-x3': 'paper-ls0.1',
  'paper-ls0.1-x5': 'paper-ls0.1-x3',
  'paper-ls0.1-r5': 'paper-ls0.1',
  'paper-ls0.1-x3-r5': 'paper-ls0.1',
  'paper-ls0.2-r5': 'paper-ls0.2',
  'paper-ls0.2-x3': 'paper-ls0.2',
  'paper-ls0.1-e6-x3': 'paper-ls0.1-e6',
  'paper-ls0.1-r5snap': 'paper-ls0.1-x3',
  'paper-ls0.1-x2-r5snap': 'paper-ls0.1-x3',
  'paper-ls0.1-x3-r5snap': 'paper-ls0.1-x3',
  'paper-ls0.1-r5-r4snap': 'paper-ls0.1-x3',
};
export const TRAININGS: Record<string, CampaignInput> = {
  sub: {},
  'sub-ls0.1': { labelSmoothing: 0.1 },
  'sub-t4': { temperature: 4 },
  'sub-e10': { epochs: paperEpochs },
  'sub-x3': { substitute: ['substitute-cnn', 'substitute-cnn', 'substitute-cnn'] },
  paper: { substitute: 'paper-cnn', epochs: paperEpochs },
  'paper-ls0.1': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1 },
  'paper-x3': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs },
  'mixed-x3': { substitute: ['paper-cnn', 'substitute-cnn', 'paper-cnn'], epochs: paperEpochs },
  'paper-r5': { substitute: 'paper-cnn', epochs: paperEpochs, rounds: 5 },
  'paper-x3-r5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, rounds: 5 },
  'paper-e6': { substitute: 'paper-cnn' },
  'paper-ls0.2': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.2 },
  'paper-ls0.2-r5': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.2, rounds: 5 },
  'paper-ls0.1-e6': { substitute: 'paper-cnn', labelSmoothing: 0.1 },
  'paper-ls0.1-x3': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, labelSmoothing: 0.1 },
  'paper-ls0.1-x5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, labelSmoothing: 0.1 },
  'paper-ls0.1-r5': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, rounds: 5 },
  'paper-ls0.1-x3-r5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, labelSmoothing: 0.1, rounds: 5 },
  'paper-ls0.2-x3': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, labelSmoothing: 0.2 },
  // The same epochs in smaller batches (more optimiser steps: round 1 has only 150 points) or at a larger rate.
  'paper-ls0.1-b64': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, batchSize: 64 },
  'paper-ls0.1-b32': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, batchSize: 32 },
  'paper-ls0.1-lr2': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, learningRate: 0.002 },
  'paper-ls0.1-b64-lr2': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, batchSize: 64, learningRate: 0.002 },
  'paper-ls0.1-e6-x3': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], labelSmoothing: 0.1 },
  // The first member's round-5 substitute (from its checkpoint) as one more member: no training.
  'paper-ls0.1-r5snap': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, snapshots: [5] },
  'paper-ls0.1-x2-r5snap': { substitute: ['paper-cnn', 'paper-cnn'], epochs: paperEpochs, labelSmoothing: 0.1, snapshots: [5] },
  'paper-ls0.1-x3-r5snap': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, labelSmoothing: 0.1, snapshots: [5] },
  'paper-ls0.1-r5-r4snap': { substitute: 'paper-cnn', epochs: paperEpochs, labelSmoothing: 0.1, rounds: 5, snapshots: [4] },
  'paper-t4': { substitute: 'paper-cnn', epochs: paperEpochs, temperature: 4 },
  'paper-early': { substitute: 'paper-cnn', epochs: [30, 20, 15, 10, 4, 2] },
  // Five members on the same labelled points: the first three are paper-x3's (the same seeds).
  'paper-x5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs },
  'paper-mix5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn', 'substitute-cnn', 'wong-cnn'], epochs: paperEpochs },
  // paper-cnn's rounds, then three substitute-cnn fitted to its labelled points (the last one paper-mix5's).
  'paper-sub4': { substitute: ['paper-cnn', 'substitute-cnn', 'substitute-cnn', 'substitute-cnn'], epochs: paperEpochs },
  // The same 4,800 (or 2,400) answers from a larger seed set and fewer rounds: more real digits, fewer
  // Jacobian points. A stronger adversary (more unlabelled data), and its evaluation images differ (the
  // evaluation set follows the seed set in the split).
  'paper-s600-r4': { substitute: 'paper-cnn', epochs: [10, 10, 4, 2], seedSize: 600, rounds: 4 },
  'paper-s4800-r1': { substitute: 'paper-cnn', epochs: 10, seedSize: 4800, rounds: 1 },
  'paper-s300-r4': { substitute: 'paper-cnn', epochs: [10, 10, 4, 2], seedSize: 300, rounds: 4 },
  'paper-x5-r5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn', 'paper-cnn'], epochs: paperEpochs, rounds: 5 },
  'paper-mix5-r5': { substitute: ['paper-cnn', 'paper-cnn', 'paper-cnn', 'substitute-cnn', 'wong-cnn'], epochs: paperEpochs, rounds: 5 },
};

const A = (name: string, a: Omit<AttackSetting, 'name'>): AttackSetting => ({ name, ...a });
export const ATTACKS: AttackSetting[] = [
  A('fgsm', { attack: 'fgsm' }),
  A('fgsm-margin', { attack: 'fgsm', loss: 'margin' }),
  A('fgsm-ti5', { attack: 'fgsm', tiKernel: 5 }),
  A('fgsm-ti7', { attack: 'fgsm', tiKernel: 7 }),
  A('fgsm-ti9', { attack: 'fgsm', tiKernel: 9 }),
  A('fgsm-margin-ti7', { attack: 'fgsm', loss: 'margin', tiKernel: 7 }),
  A('fgsm-margin-ti9', { attack: 'fgsm', loss: 'margin', tiKernel: 9 }),
  A('fgsm-margin-ti3', { attack: 'fgsm', loss: 'margin', tiKernel: 3 }),
  A('fgsm-t10', { attack: 'fgsm', temperature: 10 }),
  A('fgsm-t100', { attack: 'fgsm', temperature: 100 }),
  A('fgsm-t10-ti5', { attack: 'fgsm', temperature: 10, tiKernel: 5 }),
  A('fgsm-di8', { attack: 'fgsm', diversity: 1, diversitySamples: 8 }),
  A('fgsm-di8-ti5', { attack: 'fgsm', diversity: 1, diversitySamples: 8, tiKernel: 5 }),
  A('fgsm-di8s70-ti5', { attack: 'fgsm', diversity: 1, diversitySamples: 8, diversityScale: 0.7, tiKernel: 5 }),
  A('fgsm-margin-ti5', { attack: 'fgsm', loss: 'margin', tiKernel: 5 }),
  A('fgsm-margin-m1', { attack: 'fgsm', loss: 'margin', members: 1 }),
  A('fgsm-margin-lossavg', { attack: 'fgsm', loss: 'margin', combine: 'loss' }),
  A('pgd20', { attack: 'pgd', steps: 20 }),
  A('pgd20-margin', { attack: 'pgd', steps: 20, loss: 'margin' }),
  A('pgd20-margin-lossavg', { attack: 'pgd', steps: 20, loss: 'margin', combine: 'loss' }),
  A('pgd20-margin-di', { attack: 'pgd', steps: 20, loss: 'margin', diversity: 0.5 }),
  A('pgd20-margin-ti3', { attack: 'pgd', steps: 20, loss: 'margin', tiKernel: 3 }),
  A('pgd20-di', { attack: 'pgd', steps: 20, diversity: 0.5 }),
  A('pgd20-ti3', { attack: 'pgd', steps: 20, tiKernel: 3 }),
  A('pgd20-lossavg', { attack: 'pgd', steps: 20, combine: 'loss' }),
  A('pgd20-t10', { attack: 'pgd', steps: 20, temperature: 10 }),
  A('mi-di20', { attack: 'mi-fgsm', steps: 20, diversity: 0.5 }),
  A('pgd10-margin', { attack: 'pgd', steps: 10, loss: 'margin' }),
  A('mi-di10-margin', { attack: 'mi-fgsm', steps: 10, loss: 'margin', diversity: 0.5 }),
  A('mi-di20-margin', { attack: 'mi-fgsm', steps: 20, loss: 'margin', diversity: 0.5 }),
  A('mi-di20-ti3', { attack: 'mi-fgsm', steps: 20, diversity: 0.5, tiKernel: 3 }),
  A('mi-di20-ti5', { attack: 'mi-fgsm', steps: 20, diversity: 0.5, tiKernel: 5 }),
  A('mi-ti20', { attack: 'mi-fgsm', steps: 20, tiKernel: 3 }),
  A('pgd10', { attack: 'pgd', steps: 10 }),
  A('pgd40', { attack: 'pgd', steps: 40 }),
  A('fgsm-ti5-lossavg', { attack: 'fgsm', tiKernel: 5, combine: 'loss' }),
  A('fgsm-margin-ti5-lossavg', { attack: 'fgsm', loss: 'margin', tiKernel: 5, combine: 'loss' }),
  A('fgsm-t10-ti5-lossavg', { attack: 'fgsm', temperature: 10, tiKernel: 5, combine: 'loss' }),
  // Mixed ensembles on paper-mix5 (1–3 paper-cnn, 4 substitute-cnn, 5 wong-cnn): which members to attack.
  A('fgsm-ti5-p14', { attack: 'fgsm', tiKernel: 5, pick: [1, 4] }),
  A('fgsm-ti5-p145', { attack: 'fgsm', tiKernel: 5, pick: [1, 4, 5] }),
  A('fgsm-ti5-p15', { attack: 'fgsm', tiKernel: 5, pick: [1, 5] }),
  A('fgsm-ti5-p124', { attack: 'fgsm', tiKernel: 5, pick: [1, 2, 4] }),
  A('fgsm-t10-ti5-p145', { attack: 'fgsm', temperature: 10, tiKernel: 5, pick: [1, 4, 5] }),
  A('fgsm-ti5-p4', { attack: 'fgsm', tiKernel: 5, pick: [4] }),
  A('fgsm-margin-ti5-p14', { attack: 'fgsm', loss: 'margin', tiKernel: 5, pick: [1, 4] }),
  A('fgsm-t10-ti5-p14', { attack: 'fgsm', temperature: 10, tiKernel: 5, pick: [1, 4] }),
  A('fgsm-ti5-lossavg-p14', { attack: 'fgsm', tiKernel: 5, combine: 'loss', pick: [1, 4] }),
  A('fgsm-ti5-p134', { attack: 'fgsm', tiKernel: 5, pick: [1, 3, 4] }),
  A('fgsm-ti5-p1234', { attack: 'fgsm', tiKernel: 5, pick: [1, 2, 3, 4] }),
  // On paper-sub4 (1 paper-cnn, 2–4 substitute-cnn).
  A('fgsm-ti5-p12', { attack: 'fgsm', tiKernel: 5, pick: [1, 2] }),
  A('fgsm-ti5-p123', { attack: 'fgsm', tiKernel: 5, pick: [1, 2, 3] }),
  A('fgsm-ti5-p234', { attack: 'fgsm', tiKernel: 5, pick: [2, 3, 4] }),
  A('fgsm-ti5-m1', { attack: 'fgsm', tiKernel: 5, members: 1 }),
  A('pgd20-m1', { attack: 'pgd', steps: 20, members: 1 }),
  A('pgd20-p14', { attack: 'pgd', steps: 20, pick: [1, 4] }),
  A('pgd20-p145', { attack: 'pgd', steps: 20, pick: [1, 4, 5] }),
  A('pgd20-p1234', { attack: 'pgd', steps: 20, pick: [1, 2, 3, 4] }),
  A('pgd20-m2', { attack: 'pgd', steps: 20, members: 2 }),
  A('pgd10-m2', { attack: 'pgd', steps: 10, members: 2 }),
  A('pgd20-step0.05', { attack: 'pgd', steps: 20, relativeStep: 0.05 }),
  A('pgd20-step0.25', { attack: 'pgd', steps: 20, relativeStep: 0.25 }),
  A('pgd10-step0.25', { attack: 'pgd', steps: 10, relativeStep: 0.25 }),
  A('pgd20-nostart', { attack: 'pgd', steps: 20, randomStart: false }),
  A('pgd40-m2', { attack: 'pgd', steps: 40, members: 2 }),
  A('pgd40-m1', { attack: 'pgd', steps: 40, members: 1 }),
  A('pgd60-m2', { attack: 'pgd', steps: 60, members: 2 }),
  A('pgd30-m2', { attack: 'pgd', steps: 30, members: 2 }),
  A('pgd40-step0.125', { attack: 'pgd', steps: 40, relativeStep: 0.125 }),
  A('pgd30', { attack: 'pgd', steps: 30 }),
  // Momentum with PGD's step (2.5/steps of ε) instead of MI-FGSM's ε/steps, with and without PGD's random start.
  A('mi20-s0.125', { attack: 'mi-fgsm', steps: 20, relativeStep: 0.125 }),
  A('mi20-s0.125-rs', { attack: 'mi-fgsm', steps: 20, relativeStep: 0.125, randomStart: true }),
  A('mi20-s0.125-rs-m2', { attack: 'mi-fgsm', steps: 20, relativeStep: 0.125, randomStart: true, members: 2 }),
  A('mi40-s0.0625-rs-m2', { attack: 'mi-fgsm', steps: 40, relativeStep: 0.0625, randomStart: true, members: 2 }),
  A('pgd10-p145', { attack: 'pgd', steps: 10, pick: [1, 4, 5] }),
];

const membersOf = (name: string) => [trainingSettings(name).substitute ?? []].flat();

/**
 * Members (numbered from 2) of the base's ensemble that `train` can take over unchanged: the same
 * architecture at the same place, fitted to the same rounds (a member's seeds depend only on its place).
 */
export function reusableMembers(base: string, train: string): number[] {
  const [from, to] = [membersOf(base), membersOf(train)];
  // Snapshots are read from the rounds' checkpoints: they change no member's training.
  const rest = (name: string) => JSON.stringify({ ...trainingSettings(name), substitute: undefined, snapshots: undefined });
  if (rest(base) !== rest(train)) return [];
  const out: number[] = [];
  for (let m = 2; m <= Math.min(from.length, to.length); m++) if (from[m - 1] === to[m - 1]) out.push(m);
  return out;
}

async function labOracle(a: { victim?: string; model: string; inProcess: boolean; target: TargetSettingsInput }, cacheDir: string): Promise<CountingOracle> {
  if (a.inProcess) {
    // The victim's own model answering in-process: the same labels as over HTTP (same model, same
    // 8-bit decoding), faster to explore with. Full figures are confirmed with campaigns over HTTP.
    const victim = fromLayers((await loadModel(a.model)).model);
    return oracleFromLabeler((images, count) => labelImages(victim, images, count), { dataset: 'mnist' }, { cacheDir });
  }
  if (!a.victim) throw new TransferlabError('invalid_arguments', 'no victim URL');
  return createTargetOracle({ url: a.victim, target: a.target, store: fileRunStore(cacheDir) });
}

export async function main(argv: string[]): Promise<number> {
  const a = await yargs(argv)
    .options({
      victim: runningVictimOption('start one from --model'),
      model: { type: 'string', default: 'models/victim', describe: 'victim model folder' },
      'in-process': { type: 'boolean', default: false, describe: 'label with the victim model in this process instead of over HTTP (exploration only)' },
      ...schemaOptions(targetSettingsShape),
      out: { type: 'string', default: join('runs', 'experiment-transfer'), describe: 'experiment folder' },
      train: { type: 'array', describe: `training settings to run (default all): ${Object.keys(TRAININGS).join(', ')}` },
      attacks: { type: 'array', describe: `attack settings to run (default all): ${ATTACKS.map((x) => x.name).join(', ')}` },
      epsilons: { type: 'array', default: [0.3], describe: 'ε values to score (default 0.3)' },
      backend: backendOption,
    })
    .strict()
    .help()
    .fail(failOnOneLine(argv))
    .parseAsync();
  const trains = (a.train ?? Object.keys(TRAININGS)).map(String);
  const attacks = (a.attacks ?? ATTACKS.map((x) => x.name)).map(String);
  const unknown = [...trains.filter((t) => !(t in TRAININGS)), ...attacks.filter((n) => !ATTACKS.some((x) => x.name === n))];
  if (unknown.length) throw new TransferlabError('invalid_arguments', `unknown setting(s): ${unknown.join(', ')}`);
  const epsilons = a.epsilons.map(Number);
  const info = await initBackend(a.backend);
  console.log(`experiment transfer on ${describeBackend(info)} → ${a.out}`);
  let victim: VictimProcess | undefined;
  const rows: LabRow[] = [];
  try {
    let url = a.victim;
    if (!url && !a['in-process']) {
      victim = await spawnVictim({ args: ['--model', a.model, '--port', '0', '--rate-limit', '100000'], stdio: 'inherit' });
      url = victim.url;
    }
    for (const train of trains) {
      console.log(`\n== ${train} ==`);
      const dir = labDir(a.out, train);
      const base = BASES[train] ? labDir(a.out, BASES[train]) : undefined;
      if (base && !existsSync(dir) && existsSync(join(base, 'checkpoints'))) {
        // The same rounds, already paid for and trained: start from them (the members are what is new).
        // With fewer rounds, only those rounds: round r's substitute is the same whatever comes after it.
        const rounds = TRAININGS[train].rounds ?? 6;
        const reused = reusableMembers(BASES[train], train);
        const keep = (src: string) => {
          const member = /member-(\d+)/.exec(src)?.[1];
          if (member) return reused.includes(Number(member));
          return src.includes('members') ? reused.length > 0 : Number(/round-(\d+)/.exec(src)?.[1] ?? 0) <= rounds;
        };
        cpSync(base, dir, { recursive: true, filter: keep });
      }
      mkdirSync(dir, { recursive: true });
      const oracle = await labOracle({ victim: url, model: a.model, inProcess: a['in-process'], target: inputFromFlags(targetSettingsShape, a) as TargetSettingsInput }, dir);
      try {
        const t = await trainedSubstitutes(trainingSettings(train), dir, oracle, (s) => console.log(s));
        for (const name of attacks) {
          const setting = ATTACKS.find((x) => x.name === name) as AttackSetting;
          const got = await attackTrained(train, t, setting, epsilons, oracle);
          for (const r of got) console.log(`  ${name} ε ${r.epsilon}: misclassification ${r.misclassificationRate?.toFixed(3)}, L2 ${r.meanL2?.toFixed(2)}, ${r.craftSeconds.toFixed(1)} s`);
          rows.push(...got);
        }
        for (const m of t.models) m.dispose();
      } finally {
        await oracle.close();
      }
    }
  } finally {
    await victim?.stop();
  }
  const stamp = `${new Date().toISOString().replace(/[:.]/g, '-')}`;
  writeFileSync(join(a.out, `transfer-${stamp}.json`), JSON.stringify({ ...provenance(1), inProcess: a['in-process'], rows }, null, 2) + '\n');
  writeFileSync(join(a.out, `transfer-${stamp}.md`), labTable(rows));
  console.log(`\n${labTable(rows)}\nwrote ${join(a.out, `transfer-${stamp}.md`)}`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
