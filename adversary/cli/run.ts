import type { CommandModule } from 'yargs';
import { describeBackend, initBackend } from '../../shared/engine/backend.js';
import { assertWritableDir } from '../../shared/fs-checks.js';
import { runCampaignCommand } from '../commands.js';
import { exitOnInterrupt } from '../run/resume-hint.js';
import { buildConfig, defaultRunDir, runOptions } from './settings.js';

/** `run`: the black-box campaign, its settings from the schema, a file and the flags. */
export function runCommand(done: (code: number) => void): CommandModule {
  return {
    command: 'run',
    describe: "black-box campaign: train a substitute from the victim's labels, attack it, measure transfer",
    builder: (y) =>
      y
        .options(runOptions)
        .example('$0 run --victim http://127.0.0.1:8080', 'the default Papernot campaign')
        .example('$0 run --victim http://127.0.0.1:8080 --dataset fashion-mnist', 'seed and evaluation images from Fashion-MNIST')
        .example('$0 run --config scripts/configs/strongest.yaml --out runs/strongest', 'settings from a file (flags given too override it)')
        .example('$0 run --resume runs/20261127-101500-substitute-cnn-fgsm', 'finish an interrupted run'),
    handler: async (a) => {
      const config = buildConfig(a, {}, process.env);
      const out = String(a.resume ?? config.out ?? defaultRunDir(config));
      assertWritableDir(out, 'the run folder');
      const info = await initBackend(a.backend as string | undefined);
      console.log(`adversary on ${describeBackend(info)}`);
      exitOnInterrupt('run', out);
      done(await runCampaignCommand({ ...config, out }, out, Boolean(a.resume)));
    },
  };
}
