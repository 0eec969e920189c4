import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { runCampaign } from '../adversary/campaign/campaign.js';
import { resolveConfig } from '../adversary/campaign/config.js';
import { createHttpOracle } from '../adversary/oracle/client.js';
import { spawnVictim } from '../victim/spawn.js';
import { benchVictimModel } from './victim-load.js';

/** The default Papernot campaign's wall time by phase, its peak memory and its tensor count per round. */
export interface CampaignFigures {
  config: string;
  wallSeconds: number;
  phases: Record<string, number>;
  attackQueries: number;
  measurementQueries: number;
  peakRssMiB: number;
  /** tf.memory().numTensors after each round: constant when nothing leaks. */
  tensorsAfterRound: number[];
  misclassificationAt03: number | null;
}

export async function benchCampaign(o: { model?: string; quick: boolean; log: (l: string) => void }): Promise<CampaignFigures> {
  const model = o.model ?? (await benchVictimModel(o.log));
  const victim = await spawnVictim({ args: ['--model', model, '--port', '0', '--no-train', '--rate-limit', '100000'], timeoutMs: 120_000 });
  const out = mkdtempSync(join(tmpdir(), 'transferlab-bench-'));
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  const tensors: number[] = [];
  try {
    const config = resolveConfig({
      victim: victim.url,
      ...(o.quick ? { rounds: 2, seedSize: 50, epochs: 2, evalSize: 200, epsilons: [0.1, 0.3], boundary: { enabled: false } } : { boundary: { enabled: false } }),
    });
    const oracle = await createHttpOracle({ url: victim.url, cacheDir: out });
    const t0 = performance.now();
    const r = await runCampaign(config, out, oracle, {
      log: () => {},
      onRound: (rec) => {
        tensors.push(tf.memory().numTensors);
        o.log(`  round ${rec.round}: ${rec.substituteSize} points, train ${rec.trainSeconds.toFixed(1)} s, agreement ${rec.agreement.toFixed(3)}`);
      },
    });
    await oracle.close();
    const wall = (performance.now() - t0) / 1000;
    const at03 = r.epsilons.find((p) => p.mode === 'untargeted' && Math.abs(p.epsilon - 0.3) < 1e-9)?.misclassificationRate ?? null;
    const phases = Object.fromEntries(Object.entries(r.phases).map(([k, v]) => [k, Number(v.toFixed(2))]));
    o.log(`campaign (${o.quick ? 'quick' : 'default Papernot'}, boundary off): ${wall.toFixed(1)} s; phases ${JSON.stringify(phases)}; peak RSS ${Math.round(peak / 2 ** 20)} MiB`);
    return {
      config: o.quick ? 'quick' : 'default (seed 150, ρ 6, λ 0.1, τ 3, FGSM; boundary off)',
      wallSeconds: Number(wall.toFixed(2)),
      phases,
      attackQueries: r.queries.attack,
      measurementQueries: r.queries.measurement,
      peakRssMiB: Math.round(peak / 2 ** 20),
      tensorsAfterRound: tensors,
      misclassificationAt03: at03,
    };
  } finally {
    clearInterval(sampler);
    await victim.stop();
    rmSync(out, { recursive: true, force: true });
  }
}
