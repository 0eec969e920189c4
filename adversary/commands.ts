import { TransferlabError } from '../shared/errors.js';
import { progressBar } from '../shared/progress.js';
import { runCampaign } from './campaign/campaign.js';
import { epochsForRound, type CampaignConfig } from './campaign/config.js';
import { createRunOracle } from './targets/oracle.js';
import { readKeysFile } from './oracle/client.js';
import { createRng } from '../shared/random.js';
import { writeReport } from './report/report.js';
import { readTransferResults, type CampaignResults } from './campaign/results.js';
import { roundRecords, type RoundRecord } from './campaign/checkpoints.js';
import { resumeHint } from './run/resume-hint.js';
import { fileRunStore } from './run/store.js';
import { runWhitebox } from './campaign/whitebox.js';

/** The CLI's side of a campaign: its run folder, terminal output, the report. The steps live in campaign-steps.ts. */
const pct = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '   –  ' : `${(100 * v).toFixed(1).padStart(5)}%`);

export function summaryTable(r: CampaignResults): string {
  const lines = [`mode        ε      misclass  transfer  targeted  mean L2`];
  for (const p of r.epsilons) {
    const l2 = p.meanL2 === undefined || p.meanL2 === null ? '   –' : p.meanL2.toFixed(2).padStart(5);
    lines.push(`${p.mode.padEnd(10)}  ${p.epsilon.toFixed(2)}  ${pct(p.misclassificationRate)}    ${pct(p.transferRate)}    ${pct(p.targetedSuccessRate)}    ${l2}`);
  }
  return lines.join('\n');
}

/** Why the campaign stopped and how to continue; the victim's own words stay in the message. */
export function stoppedMessage(e: TransferlabError, out: string): string {
  const resume = resumeHint('run', out);
  if (e.code === 'extraction_suspected') {
    return (
      `the victim flagged this key as an extraction attack and refuses its queries (HTTP 403 extraction_suspected; nothing more was charged).\n` +
      `${e.message}\nThe run folder ${out} keeps its checkpoints and every answer already paid for; resume with ${resume}, ` +
      `after the victim's operator lifts the block, or with another key as KEY.`
    );
  }
  return `${e.message}\nThe run folder ${out} keeps every answer and finished round; continue with: ${resume}`;
}

/** Called after each finished substitute round (a sweep's worker reports it as the job's progress). */
export type RoundObserver = (r: RoundRecord, rounds: number) => void;

export async function runCampaignCommand(config: CampaignConfig, out: string, resume: boolean, onRound?: RoundObserver): Promise<number> {
  const store = fileRunStore(out);
  if (resume && !store.exists('config.json')) throw new TransferlabError('run_missing', `${out} is not a run folder (no config.json)`);
  if (!resume && store.exists('results.json')) {
    throw new TransferlabError('run_exists', `${out} already holds a finished run; choose another --out or --resume it`);
  }
  const oracle = await createRunOracle(
    { ...config, ...(config.keysFile ? { apiKeys: readKeysFile(config.keysFile) } : {}), keyOrder: config.keyOrder, random: createRng(config.seed ^ 0x5b1) },
    store,
  );
  const info = await oracle.info();
  const via = config.target === 'transferlab' ? '' : ` (${config.target}${config.modelName ? ` model ${config.modelName}` : ''})`;
  console.log(`victim ${config.victim}${via}: ${info.dataset ?? 'dataset not named'}, ${info.inputShape.join('×')}, ${info.classes} classes, answers ${info.output} (the campaign uses: ${config.threat}), max batch ${info.maxBatch}`);
  const bar = progressBar('{label} [{bar}] {value}/{total} batches | {stats}');
  // Rounds already on disk when resuming, so the bar names the round actually being trained.
  let round = resume ? roundRecords(store).length : 0;
  try {
    const results = await runCampaign(config, store, oracle, {
      log: (line) => console.log(line),
      onBatchEnd: ({ epoch, batch, batches, loss }) => {
        const epochs = epochsForRound(config, round);
        if (epoch === 0 && batch === 1) bar.start(batches * epochs, `round ${round + 1}/${config.rounds}`);
        bar.update(epoch * batches + batch, { stats: `epoch ${epoch + 1}/${epochs} loss ${loss.toFixed(3)}` });
        if (epoch === epochs - 1 && batch === batches) bar.stop();
      },
      onRound: (r) => {
        round = r.round;
        onRound?.(r, config.rounds);
        console.log(
          `round ${r.round}: substitute trained on ${r.substituteSize} points, ${r.attackQueries} attack queries, ` +
            `accuracy ${pct(r.substituteAccuracy).trim()}, agreement with victim ${pct(r.agreement).trim()}`,
        );
      },
    });
    const whitebox = 'whitebox/results.json';
    const report = await writeReport(store, results, store.exists(whitebox) ? { whitebox: readTransferResults(store, whitebox) } : undefined);
    console.log(`\n${summaryTable(results)}`);
    console.log(
      `\nqueries: ${results.queries.attack} attack, ${results.queries.measurement} measurement; ` +
        `victim clean accuracy ${pct(results.victimCleanAccuracy).trim()}; ${results.durationSeconds.toFixed(1)} s`,
    );
    const plan = results.queryPlan;
    if (plan) {
      const line = (p: { planned: number; atMost: boolean; paid: number }) => `${p.paid} paid of ${p.atMost ? 'at most ' : ''}${p.planned} planned`;
      console.log(`planned vs paid: attack ${line(plan.attack)}; measurement ${line(plan.measurement)}`);
    }
    for (const p of results.partial ?? []) console.log(`PARTIAL: ${p.measure} measured ${p.measured} of ${p.planned} ${p.unit} (the key's budget ran out); its figures are over those only`);
    console.log(`results: ${store.where('results.json')}\nreport:  ${report}`);
    return 0;
  } catch (e) {
    // Whatever stopped the campaign, nothing paid for is lost: say how to continue.
    // A run refused before its first query left no folder to resume: its own message says what to do.
    if (e instanceof TransferlabError && !(e.code === 'budget_insufficient' && !store.exists('config.json'))) {
      throw new TransferlabError(e.code, stoppedMessage(e, out), e.status);
    }
    throw e;
  } finally {
    bar.stop();
    await oracle.close();
  }
}

export async function runWhiteboxCommand(config: CampaignConfig, modelDir: string, out: string): Promise<number> {
  const store = fileRunStore(out);
  const results = await runWhitebox(config, modelDir, store);
  const report = await writeReport(store, results);
  console.log(`\n${summaryTable(results)}\n\nvictim clean accuracy ${pct(results.victimCleanAccuracy).trim()}`);
  console.log(`results: ${store.where('results.json')}\nreport:  ${report}`);
  return 0;
}
