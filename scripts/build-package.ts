/**
 * `npm run build` (and `npm pack`, through prepack): the package's JavaScript and type declarations in dist/,
 * compiled by tsc (tsconfig.build.json) from the two entry points — lib/index.ts, the library, and lib/cli.ts,
 * the `transferlab` command — and whatever they import; then the wasm kernels, which the code reads beside
 * its own modules at run time (shared/engine/wasm-modules.ts, victim/detect/nearest.ts), copied to the same
 * places under dist/.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMain, runMain } from '../shared/cli.js';
import { TransferlabError } from '../shared/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'dist');
/** Folders whose .wasm files the built code loads. */
const WASM_FROM = ['shared', 'victim', 'adversary'];

export function wasmFiles(): string[] {
  return WASM_FROM.flatMap((dir) =>
    readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith('.wasm'))
      .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name))),
  );
}

export async function main(): Promise<number> {
  const started = performance.now();
  rmSync(OUT, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const built = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (built.status !== 0) throw new TransferlabError('build_failed', `tsc -p tsconfig.build.json failed (exit ${built.status ?? built.signal})`);
  const wasm = wasmFiles();
  for (const file of wasm) {
    mkdirSync(path.dirname(path.join(OUT, file)), { recursive: true });
    copyFileSync(path.join(ROOT, file), path.join(OUT, file));
  }
  chmodSync(path.join(OUT, 'lib', 'cli.js'), 0o755);
  console.log(`built dist/ (${wasm.length} wasm kernels) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

if (isMain(import.meta.url)) runMain(main);
