import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { backendInfo } from './engine/backend.js';

const ownVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

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
