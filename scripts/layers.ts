/**
 * The import graph's layers and cycles, from the TypeScript imports (resolved by the TypeScript
 * compiler, type-only imports included).
 *
 *   npm run layers            print which folder imports which, the cycles and any layer violation
 *
 * Layers, bottom up: shared/ (imports no other folder), then victim/ and adversary/ (peers: neither
 * imports the other), then scripts/ (the lab: demo, bench, experiments), then lib/ (the package's entry points:
 * the transferlab command and the library), then test/. A file may import its own folder and the layers below it. Inside shared/, its sub-folders are its bottom: engine/ (backend
 * and kernels), protocol/ (the API contract) and datasets/ each import only themselves and shared/'s two leaf
 * helpers (errors, random), so each can be read, tested and replaced without the rest of shared/.
 * test/layers.test.ts enforces this and that there is no cycle.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { isMain, runMain } from '../shared/cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LAYERS: Record<string, number> = { shared: 0, victim: 1, adversary: 1, scripts: 2, lib: 3, test: 4 };

/** shared/'s sub-folders (each its own part: no import of another part or of the rest of shared/, bar the leaves). */
export const SHARED_PARTS = ['engine', 'protocol', 'datasets'];
export const SHARED_LEAVES = ['shared/errors.ts', 'shared/random.ts'];

/**
 * Inside victim/ and adversary/ the sub-folders are floors too: a sub-folder may import the sub-folders on
 * its own floor and below, never one above — what a run keeps and how it asks (run/, oracle/) knows nothing of
 * campaigns, query attacks or reports; the victim's state and detectors (store/, detect/, train/) nothing of its
 * HTTP layer or served models. Files at a folder's top (its CLIs) and folders not listed are outside this rule.
 */
export const SUB_LAYERS: Record<string, Record<string, number>> = {
  adversary: { run: 0, oracle: 0, targets: 0, campaign: 1, query: 1, report: 1, queue: 2, cli: 3 },
  victim: { detect: 0, train: 0, store: 0, http: 1, model: 2 },
};

/**
 * Imports allowed to break the layers, each with the reason beside it. Empty: keep it that way, and move a
 * file to the layer it belongs in rather than adding an entry here.
 */
export const ALLOWED: ReadonlyArray<readonly [from: string, toFolder: string]> = [];

/** file -> the repository files it imports (paths relative to the repository, '/'-separated). */
export type Graph = Map<string, Set<string>>;

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .filter((f) => !f.split('/').includes('node_modules'));
}

/** Module specifiers of a file: import / export ... from, import '...', import('...'). */
function specifiers(file: string, text: string): string[] {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      out.push(n.moduleSpecifier.text);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteral(n.arguments[0])) {
      out.push(n.arguments[0].text);
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

/** The graph of every .ts file under the layer folders. */
export function importGraph(): Graph {
  const options: ts.CompilerOptions = { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, allowImportingTsExtensions: true };
  const graph: Graph = new Map();
  for (const file of Object.keys(LAYERS).flatMap(sourceFiles)) {
    const abs = path.join(ROOT, file);
    const deps = new Set<string>();
    for (const spec of specifiers(file, readFileSync(abs, 'utf8'))) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins are outside the layers
      const r = ts.resolveModuleName(spec, abs, options, ts.sys).resolvedModule;
      if (r && !r.isExternalLibraryImport) deps.add(path.relative(ROOT, r.resolvedFileName).split(path.sep).join('/'));
    }
    graph.set(file, deps);
  }
  return graph;
}

const folder = (file: string): string => file.split('/')[0];

export interface Violation { from: string; to: string; why: string }
/** Imports that go up a layer or sideways to a peer (the allow-list aside). */
export function violations(graph: Graph, allowed = ALLOWED): Violation[] {
  const out: Violation[] = [];
  for (const [from, deps] of graph) {
    for (const to of deps) {
      const [a, b] = [folder(from), folder(to)];
      const part = a === 'shared' ? SHARED_PARTS.find((p) => from.startsWith(`shared/${p}/`)) : undefined;
      if (part && b === 'shared' && !to.startsWith(`shared/${part}/`) && !SHARED_LEAVES.includes(to)) {
        out.push({ from, to, why: `shared/${part}/ may import only itself and ${SHARED_LEAVES.join(', ')}` });
        continue;
      }
      const floors = SUB_LAYERS[a];
      const [subA, subB] = [from.split('/')[1], to.split('/')[1]];
      if (a === b && floors && subA !== subB && subA in floors && subB in floors && floors[subB] > floors[subA]) {
        out.push({ from, to, why: `${a}/${subA}/ must not import ${a}/${subB}/, a floor above it` });
        continue;
      }
      if (a === b || !(a in LAYERS) || !(b in LAYERS)) continue;
      if (LAYERS[b] < LAYERS[a]) continue;
      if (allowed.some(([f, t]) => f === from && t === b)) continue;
      out.push({ from, to, why: LAYERS[b] === LAYERS[a] ? `${a}/ must not import its peer ${b}/` : `${a}/ must not import ${b}/, a layer above it` });
    }
  }
  return out;
}

/** Import cycles: strongly connected sets of more than one file (or a file importing itself), Tarjan's algorithm. */
export function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { connect(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      for (let w = stack.pop()!; ; w = stack.pop()!) { on.delete(w); scc.push(w); if (w === v) break; }
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return out;
}

/** The printed report: layers with their files and the folders each imports, cycles, violations. */
export function report(graph: Graph): string {
  const lines: string[] = ['layers (bottom up; a folder may import its own files and the layers below):'];
  const byLayer = [...new Set(Object.values(LAYERS))].sort();
  for (const rank of byLayer) {
    for (const dir of Object.keys(LAYERS).filter((d) => LAYERS[d] === rank)) {
      const files = [...graph.keys()].filter((f) => folder(f) === dir);
      const uses = new Map<string, number>();
      for (const f of files) for (const t of graph.get(f)!) if (folder(t) !== dir) uses.set(folder(t), (uses.get(folder(t)) ?? 0) + 1);
      const list = [...uses].sort().map(([d, n]) => `${d}/ (${n})`).join(', ') || 'no other folder';
      lines.push(`  ${rank}  ${(dir + '/').padEnd(11)} ${String(files.length).padStart(3)} files  imports ${list}`);
    }
  }
  const c = cycles(graph), v = violations(graph);
  lines.push(c.length ? `import cycles (${c.length}):` : 'import cycles: none');
  for (const scc of c) lines.push(`  ${scc.join(' <-> ')}`);
  lines.push(v.length ? `layer violations (${v.length}):` : 'layer violations: none');
  for (const x of v) lines.push(`  ${x.from} -> ${x.to}: ${x.why}`);
  const allowed = [...graph].flatMap(([f, deps]) => [...deps].filter((t) => ALLOWED.some(([a, b]) => a === f && b === folder(t))).map((t) => `${f} -> ${t}`));
  if (allowed.length) lines.push(`allowed for now (to be moved out): ${allowed.length} imports`, ...allowed.map((a) => `  ${a}`));
  return lines.join('\n');
}

export async function main(): Promise<number> {
  const graph = importGraph();
  console.log(report(graph));
  return cycles(graph).length || violations(graph).length ? 1 : 0;
}

if (isMain(import.meta.url)) runMain(main);
