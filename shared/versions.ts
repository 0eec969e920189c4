import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { backendInfo } from './engine/backend.js';

// Through the package's own name (its `./package.json` export): the same file from the sources and from dist/.
const ownVersion = (createRequire(import.meta.url)('transferlab/package.json') as { version: string }).version;

/** What every result file records about the software and machine that produced it. */
export function provenance(seed: number): {
  seed: number;
  backend: string;
  threads: number;
  versions: { transferlab: string; tfjs: string; node: string };
  cores: number;
} {
  const info = backendInfo();
  return {
    seed,
    backend: info.backend,
    threads: info.threads,
    versions: { transferlab: ownVersion, tfjs: info.tfjsVersion, node: process.version },
    cores: availableParallelism(),
  };
}
