import type { Dataset } from '../../shared/datasets/index.js';
import { adversarySplit, subset } from '../../shared/datasets/images.js';
import type { ImageSet } from '../../shared/datasets/types.js';
import type { ModelShape } from '../../shared/model/architectures.js';
import type { CountingOracle } from '../oracle/core.js';
import type { QueryPurpose, VictimInfo } from '../oracle/oracle.js';
import { attackerDataset } from './dataset-choice.js';
import { isBudgetRefusal, measureCut } from './measure-cut.js';
import { checkPlan, type BudgetCheck, type QueryPlan } from './query-plan.js';
import { startRunClock, type RunClock } from './clock.js';
import { putJson, runStore, type RunStore } from './store.js';
import { TransferlabError } from '../../shared/errors.js';
import { parseOutputPolicy, threatProblem, type Threat } from '../../shared/protocol/output.js';

/**
 * The steps every run against the victim begins with, whatever it does next: the campaign
 * (campaign/campaign.ts) and the query attack (query/run.ts) both run `budget` then `select`, on the
 * same images for the same settings, so their figures are over the same evaluation set. Like every
 * step, each is a function of the state before it and of the run store, and touches no file itself.
 */

/** One step of a run: what it found added to the state the steps before it built; what must outlive the process goes to the store. */
export type Step<In, Out> = (state: In, store: RunStore) => Promise<Out>;

/** Runs one step and records its end on the run's clock. */
export type ClockedStep = <In, Out extends { phases: Record<string, number> }>(step: Step<In, Out>, state: In) => Promise<Out>;

/**
 * A run's pipeline under its clock. Each step's end is kept work, so the clock records it and a resumed run
 * reports the whole run's duration; however the pipeline ends (finished, or stopped by a spent budget or a
 * refusal) this session's time is recorded too, from the phases object every step adds to.
 */
export async function clockedRun<S extends { phases: Record<string, number> }, R>(
  run: RunStore | string,
  begin: (clock: RunClock) => S,
  pipeline: (step: ClockedStep, begun: S, store: RunStore) => Promise<R>,
): Promise<R> {
  const store = runStore(run);
  const clock = startRunClock(store);
  const begun = begin(clock);
  const step: ClockedStep = async (f, state) => {
    const out = await f(state, store);
    clock.tick(out.phases);
    return out;
  };
  try {
    return await pipeline(step, begun, store);
  } finally {
    clock.tick(begun.phases);
    clock.close();
  }
}

/** Which of the attacker's images a run works on, and how it pays for their clean labels. */
export interface ImageChoice {
  seed: number;
  seedSize: number;
  evalSize: number;
  /** A built-in dataset's name or a folder; unset: the victim's dataset when /v1/info names a built-in one, else MNIST. */
  dataset?: string;
  /** 'attack' when the attacker uses the victim's clean labels (to craft, or to search from), else 'measurement'. */
  cleanPurpose: QueryPurpose;
}

/** What `budget` and `select` read from the state the run began with. */
export interface RunStart {
  oracle: CountingOracle;
  hooks: { log: (line: string) => void };
  /** Seconds by kind of work; select adds the clean labels' time to `measurement`. */
  phases: { measurement: number };
  allowPartial: boolean;
  /** What the settings will cost, by purpose, and the key's budget as the victim told it before the first paid query. */
  plan: QueryPlan;
  budget: BudgetCheck | null;
  choice: ImageChoice;
  /** config.json: the resolved settings, never the key; written once, when the run folder is new. */
  saved: Record<string, unknown>;
  /** What the run may use of each answer (label when absent); checked against the victim's output policy before any query. */
  threat?: Threat;
}

export interface Selection {
  info: VictimInfo;
  dataset: Dataset;
  shape: ModelShape;
  /** Indices into the dataset's test images (disjoint): the attacker's seed set, and the images attacked and scored. */
  split: { seedSet: Int32Array; evalSet: Int32Array };
  seedSet: ImageSet;
  evalSet: ImageSet;
  /** The victim's labels of the clean evaluation images. */
  cleanVictim: Int32Array;
}

const since = (t: number) => (performance.now() - t) / 1000;

/** The resolved settings without the key and the target's token, the form config.json keeps them in (both are secrets). */
export function withoutKey<C extends { apiKey?: string; token?: string }>(config: C): Omit<C, 'apiKey' | 'token'> {
  const { apiKey: _secret, token: _token, ...saved } = config;
  return saved;
}

/**
 * A run that asks for more of each answer than the victim gives (scores from a label-only victim) is
 * refused here, from /v1/info, before the budget is read or anything is paid.
 */
export async function checkThreat(oracle: CountingOracle, threat: Threat): Promise<void> {
  const info = await oracle.info();
  const problem = threatProblem(threat, parseOutputPolicy(info.output), info.classes);
  if (problem) {
    throw new TransferlabError('threat_unavailable', `${problem}; set threat to what the victim gives (label${threat === 'scores' ? ' or topk' : ''}), or serve it with a richer --output`);
  }
}

/** The planned cost printed and checked against the key's budget, before anything is paid (and the threat model against what the victim answers). */
export async function budget<S extends RunStart>(s: S): Promise<S> {
  await checkThreat(s.oracle, s.threat ?? 'label');
  return { ...s, budget: await checkPlan(s.plan, s.oracle, s.allowPartial, s.hooks.log) };
}

/** The run's config, the victim's description, the attacker's images split into seed and evaluation sets, and the victim's clean labels. */
export async function select<S extends RunStart>(s: S, store: RunStore): Promise<S & Selection> {
  const { oracle, choice } = s;
  if (!store.exists('config.json')) putJson(store, 'config.json', s.saved);
  const info = await oracle.info();
  // Whatever the run builds or searches works on what the victim takes and answers; the attacker's images must match it.
  const dataset = attackerDataset(choice.dataset, info, s.hooks.log);
  // The adversary's own data is a small seed set of test images; the evaluation set is disjoint.
  const split = adversarySplit(choice.seed, choice.seedSize, choice.evalSize, dataset.test.count);
  const evalSet = subset(dataset.test, split.evalSet);
  const t = performance.now();
  let cleanVictim: Int32Array;
  try {
    cleanVictim = await oracle.label(evalSet.images, evalSet.count, choice.cleanPurpose);
  } catch (e) {
    // Every later figure is over these labels: even allowPartial cannot go on without all of them.
    if (isBudgetRefusal(e)) throw measureCut('victim\'s labelling of the clean evaluation images', 0, evalSet.count, e.message.split('\n')[0], false);
    throw e;
  }
  s.phases.measurement += since(t);
  return { ...s, info, dataset, shape: { inputShape: dataset.shape, classes: info.classes }, split, seedSet: subset(dataset.test, split.seedSet), evalSet, cleanVictim };
}
