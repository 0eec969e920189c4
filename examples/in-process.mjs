// transferlab as a library: train a small victim, serve it from this process, attack it through its
// label-only HTTP API, then read the results back. Uses only the package's public API.
//
//   node examples/in-process.mjs [folder]      (folder: where models/ and runs/ go; default: the current one)
//
// About a minute on 2 cores. `transferlab demo` does the same from the command line, with the full victim.
import { join } from 'node:path';
import { attack, describeBackend, hasModel, initBackend, readRun, startVictim, trainVictim, VICTIM_DEFAULTS } from 'transferlab';

const folder = process.argv[2] ?? '.';
const model = join(folder, 'models', 'example-victim');
const run = join(folder, 'runs', `example-${Date.now()}`);

console.log(`on ${describeBackend(await initBackend())}`);

// 1. The victim: the default architecture on 3,000 training images, one epoch (seconds; not a strong model).
if (!hasModel(model)) {
  const trained = await trainVictim({ ...VICTIM_DEFAULTS, epochs: 1, limit: 3000, out: model });
  console.log(`victim trained: test accuracy ${Number(trained.testAccuracy).toFixed(3)} in ${trained.durationSeconds} s`);
}

// 2. Served in this process over loopback HTTP, open (no keys), with a budget of 20,000 labels.
const victim = await startVictim({ model, budget: 20_000 });
console.log(`victim at ${victim.url}: ${victim.info.inputShape.join('×')}, ${victim.info.classes} classes`);

try {
  // 3. A small black-box campaign; the settings are the campaign's (docs/campaign.md), progress by callback.
  // BIM crafted on two threads (craftThreads: 2 starts a worker thread from the installed package).
  const { results, report } = await attack(
    { victim: victim.url, rounds: 3, evalSize: 100, attack: 'bim', steps: 3, craftThreads: 2, epsilons: [0.1, 0.3], targeted: false, boundary: { enabled: false } },
    { run, onRound: (r) => console.log(`round ${r.round}: ${r.substituteSize} points, agreement ${(100 * r.agreement).toFixed(1)} %`) },
  );
  const at03 = results.epsilons.find((p) => p.mode === 'untargeted' && p.epsilon === 0.3);
  console.log(`transfer rate at ε 0.3: ${(100 * at03.transferRate).toFixed(1)} %; ${results.queries.attack} attack queries; report ${report}`);

  // 4. Read the run back through the results contract, as `transferlab compare` does.
  const saved = readRun(run);
  console.log(`${run}/results.json: a ${saved.kind} run, ${saved.durationSeconds.toFixed(1)} s`);
} finally {
  await victim.close();
}
