import type { CommandModule } from 'yargs';
import { TransferlabError } from '../../shared/errors.js';
import { compareRuns, formatTable } from '../report/compare.js';

/** `compare`: finished runs of any kind side by side. */
export const compareCommand: CommandModule = {
  command: 'compare <dirs..>',
  describe: 'compare finished runs of any kind (campaign, white-box, query attack) or defence evaluations: key figures, differing settings, curves on shared axes',
  builder: (y) =>
    y
      .positional('dirs', { type: 'string', array: true, describe: 'run folders (results.json) or defence evaluation folders (evaluation.json)' })
      .option('out', { type: 'string', describe: 'folder for compare.csv and compare.html' })
      .example('$0 compare runs/a runs/b --out runs/compare-ab', 'two campaigns side by side')
      .example('$0 compare runs/campaign runs/rays --out runs/compare-kinds', 'a transfer campaign beside a query attack'),
  handler: async (a) => {
    const dirs = (a.dirs ?? []) as string[];
    if (dirs.length < 1) throw new TransferlabError('invalid_arguments', 'compare needs at least one run folder');
    const table = await compareRuns(dirs, a.out as string | undefined);
    console.log(formatTable(table.rows));
    console.log(`\nwrote ${table.csvPath} and ${table.htmlPath}`);
  },
};
