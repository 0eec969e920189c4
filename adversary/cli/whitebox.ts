import type { CommandModule } from 'yargs';
import { describeBackend, initBackend } from '../../shared/engine/backend.js';
import { assertWritableDir } from '../../shared/fs-checks.js';
import { runWhiteboxCommand } from '../commands.js';
import { buildConfig, defaultRunDir, WHITEBOX_BASE, whiteboxOptions } from './settings.js';

/** `whitebox`: the seed paper's baseline, attacking the victim's own model files. */
export function whiteboxCommand(done: (code: number) => void): CommandModule {
  return {
    command: 'whitebox',
    describe: "white-box baseline: attack the victim model directly, reading its files (the seed paper's setting)",
    builder: (y) => y.options(whiteboxOptions).example('$0 whitebox --model models/victim --epsilons 0.1 0.2 0.3', "the seed paper's sweep"),
    handler: async (a) => {
      const config = buildConfig(a, WHITEBOX_BASE);
      const out = String(config.out ?? defaultRunDir(config, 'whitebox'));
      assertWritableDir(out, 'the run folder');
      const info = await initBackend(a.backend as string | undefined);
      console.log(`white-box baseline on ${describeBackend(info)}`);
      done(await runWhiteboxCommand({ ...config, out }, String(a.model), out));
    },
  };
}
