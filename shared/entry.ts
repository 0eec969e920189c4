import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Starting one of the project's own modules in another process or worker thread, from wherever this code
 * runs: the TypeScript sources of a clone (tsx compiles them as they load) or the built package (`dist/`,
 * plain JavaScript, where tsx is not installed). The mode is read from the caller's own module URL.
 */
export function fromSource(metaUrl: string): boolean {
  return metaUrl.endsWith('.ts');
}

/**
 * `node` flags that let a new process load this project's modules: tsx's loader when running from source.
 * The loader is named by its file, found from the caller's module: a bare `tsx` would be looked up from the
 * child's working directory, which need not be the project (the demo run in an empty folder).
 */
export function nodeLoader(metaUrl: string): string[] {
  return fromSource(metaUrl) ? ['--import', pathToFileURL(createRequire(metaUrl).resolve('tsx')).href] : [];
}

/**
 * The file of the project module `relative` (written as imports write it, `./job.js`) beside the module at
 * `metaUrl`: the `.ts` source when running from source, the built `.js` otherwise.
 */
export function ownModuleUrl(relative: string, metaUrl: string): URL {
  const url = new URL(relative, metaUrl);
  if (fromSource(metaUrl)) url.pathname = url.pathname.replace(/\.js$/, '.ts');
  return url;
}

export function ownModulePath(relative: string, metaUrl: string): string {
  return fileURLToPath(ownModuleUrl(relative, metaUrl));
}
