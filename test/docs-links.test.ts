/**
 * The documentation's relative links hold: every relative markdown link in README.md, ARCHITECTURE.md,
 * victim/README.md and docs/**\/*.md names a file of the repository, and a link with a #fragment names a heading of that file (as
 * GitHub renders its anchor). Other documents and code comments cite "docs/<page>.md, section <Heading>",
 * so a renamed heading or a moved page must fail here, not in a reader's browser. README.md stays a front
 * door: at most 250 lines.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const README_MAX_LINES = 250;

/** Markdown without fenced code blocks and inline code spans, where brackets are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Link targets of inline links and images: [text](target) and [text](target "title"). */
function linkTargets(markdown: string): string[] {
  return [...prose(markdown).matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]);
}

/** The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  const withoutFences = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const text = m[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Every broken relative link of the given files (paths relative to root), as "file: target — why". */
function brokenLinks(files: string[], read: (path: string) => string | undefined): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const text = read(file);
    if (text === undefined) {
      problems.push(`${file}: cannot be read`);
      continue;
    }
    for (const target of linkTargets(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue; // http:, mailto:, …
      const hash = target.indexOf('#');
      const pathPart = decodeURI(hash < 0 ? target : target.slice(0, hash));
      const fragment = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
      const resolved = pathPart === '' ? file : normalize(join(dirname(file), pathPart)).replace(/\/$/, '');
      if (resolved.startsWith('..') || pathPart.startsWith('/')) {
        problems.push(`${file}: ${target} — leaves the repository`);
        continue;
      }
      const linked = read(resolved);
      if (linked === undefined) {
        problems.push(`${file}: ${target} — no such file`);
        continue;
      }
      if (fragment !== undefined && resolved.endsWith('.md') && !headingAnchors(linked).has(fragment)) {
        problems.push(`${file}: ${target} — ${resolved} has no heading with the anchor #${fragment}`);
      }
    }
  }
  return problems;
}

function markdownUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return markdownUnder(path);
    return e.name.endsWith('.md') ? [path] : [];
  });
}

/** A repository path's text; a folder reads as an empty file (a link to it is fine, it has no headings). */
function readRepoFile(path: string): string | undefined {
  const full = join(ROOT, path);
  if (!existsSync(full)) return undefined;
  return statSync(full).isDirectory() ? '' : readFileSync(full, 'utf8');
}

describe('documentation links', () => {
  const files = ['README.md', 'ARCHITECTURE.md', join('victim', 'README.md'), ...markdownUnder('docs')];

  it('covers the front door, the architecture and every page under docs/', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(files).toContain(join('docs', 'campaign.md'));
    expect(files).toContain(join('docs', 'results', 'transfer.md'));
  });

  it('every relative link names an existing file, and every #fragment a heading of it', () => {
    expect(brokenLinks(files, readRepoFile)).toEqual([]);
  });

  it('README.md is a front door of at most 250 lines', () => {
    const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\n$/, '').split('\n');
    expect(lines.length).toBeLessThanOrEqual(README_MAX_LINES);
  });

  it('the check reports a missing file, a missing heading and a link out of the repository, and no link in code', () => {
    const pages: Record<string, string> = {
      'README.md': [
        '# Tool',
        'See [the guide](docs/guide.md#a-section), [gone](docs/gone.md), [bad anchor](docs/guide.md#nope),',
        '[up](../outside.md), [web](https://example.org/x.md), [here](#tool) and `[code](docs/none.md)`.',
        '```sh',
        'echo "[fenced](docs/none.md)"',
        '```',
      ].join('\n'),
      'docs/guide.md': '# Guide\n\n## A section\n\n## The victim’s HTTP API (version 1)\n\n## A section\n',
    };
    const problems = brokenLinks(['README.md'], (p) => pages[p]);
    expect(problems).toEqual([
      'README.md: docs/gone.md — no such file',
      'README.md: docs/guide.md#nope — docs/guide.md has no heading with the anchor #nope',
      'README.md: ../outside.md — leaves the repository',
    ]);
    expect([...headingAnchors(pages['docs/guide.md'])]).toEqual(['guide', 'a-section', 'the-victims-http-api-version-1', 'a-section-1']);
  });
});
