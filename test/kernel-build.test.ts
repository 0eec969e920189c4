/**
 * The wasm kernels' build: the committed binaries are what their .wat sources assemble to, and the
 * parameter names the TypeScript callers use are the ones the .wat declares.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { staleKernels } from '../scripts/build-kernels.js';
import { KERNEL_MODULES, KERNEL_NAMES, PARAMS, kernelBinary, kernelCall, type KernelArgs } from '../shared/engine/wasm-modules.js';

/** Exported function name -> its parameter names, read from a .wat file's text. */
function declared(file: string): Map<string, string[]> {
  const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8').replace(/;;[^\n]*/g, '');
  const out = new Map<string, string[]>();
  for (const m of text.matchAll(/\(func \$\w+ \(export "(\w+)"\)((?:\s*\(param \$\w+ i32\))*)/g)) {
    out.set(m[1], [...m[2].matchAll(/\(param \$(\w+) i32\)/g)].map((p) => p[1]));
  }
  return out;
}

describe('kernel build', () => {
  it('every committed binary is byte for byte what its .wat assembles to', async () => {
    expect(await staleKernels(), 'run `npm run build:kernels` after editing a .wat file').toEqual([]);
  }, 60_000);

  it('the callers name each parameter as the .wat declares it, and every export is known', () => {
    const all = new Map<string, string[]>();
    for (const m of KERNEL_MODULES) for (const [k, v] of declared(`shared/engine/kernels/${m}.wat`)) all.set(k, v);
    expect([...all.keys()].sort()).toEqual([...KERNEL_NAMES].sort());
    for (const name of KERNEL_NAMES) expect(all.get(name), name).toEqual([...PARAMS[name]]);
  });

  it('each binary exports exactly the functions the callers index', () => {
    const exported = KERNEL_MODULES.flatMap((m) =>
      WebAssembly.Module.exports(new WebAssembly.Module(kernelBinary(m, false))).map((e) => e.name));
    expect(exported.sort()).toEqual([...KERNEL_NAMES].sort());
  });

  it('a call with a missing argument is an error naming it', () => {
    const args = { x: 0, out: 16 } as unknown as KernelArgs<'relu'>;
    expect(() => kernelCall('relu', args)).toThrow(/relu: argument bytes is undefined/);
    expect(kernelCall('relu', { x: 0, out: 16, bytes: 32 })).toEqual([KERNEL_NAMES.indexOf('relu'), 0, 16, 32]);
  });
});
