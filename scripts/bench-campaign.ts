import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { spawnVictim } from '../victim/spawn.js';
import { benchVictimModel } from './victim-load.js';

/** One timed campaign: its wall time and phases. */
export interface CampaignRun {
  wallSeconds: number;
  phases: Record<string, number>;
}

/**
 * The default campaign — what `transferlab attack` runs, boundary measures included, against a victim with its
 * default settings — timed `runs` times (each in a fresh run folder, so each pays for every query); the
 * figures are the median run's. Also its peak memory and tensor count per round (the first run's).
 */
export interface CampaignFigures {
  config: string;
  /** The median of the runs' wall times, and that run's phases. */
  wallSeconds: number;
  phases: Record<string, number>;
  runs: CampaignRun[];
  attackQueries: number;
  measurementQueries: number;
  peakRssMiB: number;
  /** tf.memory().numTensors after each round: constant when nothing leaks. */
  tensorsAfterRound: number[];
  misclassificationAt03: number | null;
}

/** Campaigns timed in the full benchmark: the machine's speed drifts by several per cent between runs. */
export const CAMPAIGN_RUNS = 3;

export async function benchCampaign(o: { model?: string; quick: boolean; log: (l: string) => void; runs?: number }): Promise<CampaignFigures> {
  const model = o.model ?? (await benchVictimModel(o.log));
  const victim = await spawnVictim({ args: ['--model', model, '--port', '0', '--no-train'], timeoutMs: 120_000 });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  const runs: (CampaignRun & { result: Awaited<ReturnType<typeof runCampaign>> })[] = [];
  const tensors: number[] = [];
  const label = o.quick ? 'quick, boundary off' : 'default';
  try {
    const config = resolveConfig({
      victim: victim.url,
      ...(o.quick ? { rounds: 2, seedSize: 50, epochs: 2, evalSize: 200, epsilons: [0.1, 0.3], boundary: { enabled: false } } : {}),
    });
    const count = o.runs ?? (o.quick ? 1 : CAMPAIGN_RUNS);
    for (let i = 0; i < count; i++) {
      const out = mkdtempSync(join(tmpdir(), 'transferlab-bench-'));
      try {
        const oracle = await createHttpOracle({ url: victim.url, cacheDir: out });
        const t0 = performance.now();
        const result = await runCampaign(config, out, oracle, {
          log: () => {},
          onRound: (rec) => {
            if (i === 0) tensors.push(tf.memory().numTensors);
            o.log(`  run ${i + 1}, round ${rec.round}: ${rec.substituteSize} points, train ${rec.trainSeconds.toFixed(1)} s, agreement ${rec.agreement.toFixed(3)}`);
          },
        });
        await oracle.close();
        const wallSeconds = Number(((performance.now() - t0) / 1000).toFixed(2));
        const phases = Object.fromEntries(Object.entries(result.phases).map(([k, v]) => [k, Number(v.toFixed(2))]));
        o.log(`campaign (${label}) run ${i + 1} of ${count}: ${wallSeconds.toFixed(1)} s; phases ${JSON.stringify(phases)}`);
        runs.push({ wallSeconds, phases, result });
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    }
    const median = [...runs].sort((a, b) => a.wallSeconds - b.wallSeconds)[(runs.length - 1) >> 1];
    const r = median.result;
    const at03 = r.epsilons.find((p) => p.mode === 'untargeted' && Math.abs(p.epsilon - 0.3) < 1e-9)?.misclassificationRate ?? null;
    o.log(`campaign (${label}): median ${median.wallSeconds.toFixed(1)} s of ${runs.map((x) => x.wallSeconds.toFixed(1)).join(', ')}; peak RSS ${Math.round(peak / 2 ** 20)} MiB`);
    return {
      config: o.quick ? 'quick (boundary off)' : 'default (seed 150, ρ 6, λ 0.1, τ 3, FGSM, boundary measures on)',
      wallSeconds: median.wallSeconds,
      phases: median.phases,
      runs: runs.map(({ wallSeconds, phases }) => ({ wallSeconds, phases })),
      attackQueries: r.queries.attack,
      measurementQueries: r.queries.measurement,
      peakRssMiB: Math.round(peak / 2 ** 20),
      tensorsAfterRound: tensors,
      misclassificationAt03: at03,
    };
  } finally {
    clearInterval(sampler);
    await victim.stop();
  }
}
