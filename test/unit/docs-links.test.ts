import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SETTINGS_DEFAULTS } from '../../src/config/gateway-settings.js';

/**
 * The documentation holds together: every relative link in README.md,
 * docs/**.md and bench/README.md reaches a file that exists and, for a
 * Markdown target, a heading (or explicit anchor) that exists; the README stays
 * a front door of at most 8 KiB; every setting the gateway reads is documented;
 * and the sections of bench/README.md that code comments cite by name exist.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const README_MAX_BYTES = 8192;

function markdownFiles(): string[] {
  const files = [join(ROOT, 'README.md'), join(ROOT, 'bench/README.md')];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.md')) files.push(path);
    }
  };
  walk(join(ROOT, 'docs'));
  return files;
}

/** The text outside fenced code blocks and inline code spans: what GitHub renders as links. */
function proseOf(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/(`+)[^`\n]*?\1/g, '');
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutFences = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const [, text] of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const plain = text.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = plain.toLowerCase().replace(/[^\p{L}\p{N}\p{M} _-]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const [, id] of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(id);
  return anchors;
}

/** Every inline and reference-style link target in the prose. */
export function linkTargets(markdown: string): string[] {
  const prose = proseOf(markdown);
  const targets: string[] = [];
  for (const [, target] of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(target);
  for (const [, target] of prose.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)) targets.push(target);
  return targets;
}

/** The broken relative links of one Markdown file, as `target: why`. */
export function brokenLinks(file: string, markdown: string, read: (path: string) => string | undefined): string[] {
  const problems: string[] = [];
  for (const target of linkTargets(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not ours to check
    const [pathPart, anchor] = target.split('#', 2);
    const path = pathPart === '' ? file : resolve(dirname(file), decodeURIComponent(pathPart));
    const text = read(path);
    if (text === undefined) {
      problems.push(`${target}: no such file`);
      continue;
    }
    if (anchor && path.endsWith('.md') && !headingAnchors(text).has(decodeURIComponent(anchor))) {
      problems.push(`${target}: no heading with anchor #${anchor}`);
    }
  }
  return problems;
}

function readIfExists(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  return statSync(path).isDirectory() ? '' : readFileSync(path, 'utf8');
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

describe('documentation links', () => {
  it('finds broken files and anchors (the checker itself)', () => {
    const files: Record<string, string> = {
      '/d/a.md': '# Top\n\n## Where it lives (`GATEHOUSE_X`)\n\n## Twice\n\n## Twice\n\n<a id="custom"></a>\n',
      '/d/b.md': [
        '[ok](a.md#where-it-lives-gatehouse_x) [ok2](a.md#twice-1) [ok3](a.md#custom) [self](#here) [web](https://x.test/#nope)',
        '[missing file](c.md) [missing anchor](a.md#nowhere) [dir](../d)',
        '`[in code](nowhere.md)`',
        '```\n[in a fence](nowhere.md)\n```',
        '[ref]: a.md#top',
        '[ref2]: a.md#gone',
        '## Here',
      ].join('\n'),
    };
    const read = (p: string) => (p === '/d' ? '' : files[p]);
    assert.deepEqual(brokenLinks('/d/b.md', files['/d/b.md'], read), [
      'c.md: no such file',
      'a.md#nowhere: no heading with anchor #nowhere',
      'a.md#gone: no heading with anchor #gone',
    ]);
  });

  it('every relative link in README.md, docs/ and bench/README.md reaches an existing file and heading', () => {
    const problems: string[] = [];
    for (const file of markdownFiles()) {
      for (const p of brokenLinks(file, readFileSync(file, 'utf8'), readIfExists)) problems.push(`${relative(ROOT, file)}: ${p}`);
    }
    assert.deepEqual(problems, []);
  });

  it(`README.md is a front door of at most ${README_MAX_BYTES} bytes`, () => {
    const size = statSync(join(ROOT, 'README.md')).size;
    assert.ok(size <= README_MAX_BYTES, `README.md is ${size} bytes; move reference material to docs/`);
  });

  it('the README links every page of docs/ (directly or through the page that lists it)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const linked = new Set(linkTargets(readme).map((t) => resolve(ROOT, t.split('#')[0])));
    const reachable = new Set(linked);
    for (const page of linked) {
      if (!page.endsWith('.md') || !existsSync(page)) continue;
      for (const t of linkTargets(readFileSync(page, 'utf8'))) reachable.add(resolve(dirname(page), t.split('#')[0]));
    }
    const unreachable = markdownFiles().filter((f) => !reachable.has(f) && f !== join(ROOT, 'README.md'));
    assert.deepEqual(unreachable.map((f) => relative(ROOT, f)), []);
  });

  it('docs/configuration.md documents every GATEHOUSE_* setting the gateway reads', () => {
    const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
    const missing = Object.keys(SETTINGS_DEFAULTS).filter((name) => {
      // The PostgreSQL row abbreviates `GATEHOUSE_PG_PORT` as `_PORT` after its first name, as Kong's docs do.
      const short = name.startsWith('GATEHOUSE_PG_') ? `\`_${name.slice('GATEHOUSE_PG_'.length)}\`` : undefined;
      return !doc.includes(`\`${name}\``) && !(short && doc.includes(short));
    });
    assert.deepEqual(missing, []);
  });

  it('the bench/README.md sections that code comments cite by name exist', () => {
    const anchors = headingAnchors(readFileSync(join(ROOT, 'bench/README.md'), 'utf8'));
    const problems: string[] = [];
    for (const file of [...sourceFiles(join(ROOT, 'src')), ...sourceFiles(join(ROOT, 'bench'))]) {
      const text = readFileSync(file, 'utf8').replace(/\n\s*(\*|\/\/)\s*/g, ' ');
      for (const [, section] of text.matchAll(/bench\/README\.md[,:]?\s+"([^"]+)"/g)) {
        const anchor = headingAnchors(`## ${section}`).values().next().value!;
        if (!anchors.has(anchor)) problems.push(`${relative(ROOT, file)}: "${section}"`);
      }
    }
    assert.deepEqual(problems, []);
  });
});
