import type { CompiledRoute } from './route-table.js';

/**
 * The index the route table matches through. It answers exactly what the
 * ordered scan of the sorted entries answers (`RouteTable.matchLinear`, the
 * reference it is checked against in test/unit/route-index.test.ts), without
 * visiting every entry: with 10,000 routes the scan visited thousands of
 * entries and ran hundreds of regexes per request (bench/README.md, "10,000
 * routes").
 *
 * The order rules (route-table.ts) rank entries by group first — the number of
 * categories a route constrains, then plain-hosts-only before wildcard — and
 * within a group: a prefix equal to the whole path, then regexes by
 * `regex_priority`, then the longest prefix, then routes without paths; ties go
 * to the entry defined first. So the index is cut along the same lines:
 *
 * - **host buckets**: one for routes without hosts, one per plain host (a map
 *   lookup), one per wildcard host (found through its fixed suffix or prefix,
 *   then confirmed by the wildcard's own regex). A request visits only the
 *   buckets its Host admits, as Kong's router narrows by host before paths.
 * - per bucket, **one index per group**, visited in group order;
 * - per group, **a radix tree** of prefix paths (longest prefix in one walk
 *   down the path, as find-my-way does) that also holds each regex at the node
 *   of its literal prefix (`~/users/\d+` under `/users/`; one node per
 *   alternative for `~/(?:a|b)/x`): a regex is tried only when the path starts
 *   with such a literal, which an anchored regex needs to match at all.
 *   Regexes without a literal prefix sit at the root and are tried
 *   for every path that reaches their group.
 *
 * Within a group the buckets' answers are merged by the same keys the sort
 * uses (length and definition order for prefixes, priority and definition
 * order for regexes), so an entry found through any bucket ranks as it would
 * in the scan. Methods are checked per entry (`admits`), as in the scan.
 */

/**
 * How one path of a route matches. A class, like RouteEntry, so that every
 * instance has one shape: the scan and the index read these fields for
 * thousands of entries, and entries built by object spread had dozens of
 * hidden classes (megamorphic loads: 16 ms for a bare loop over 10,000 of
 * them against 0.4 ms for one-shape objects on the loaded bench machine).
 */
export class PathMatcher {
  constructor(
    readonly kind: 'exactOrPrefix' | 'regex' | 'any',
    /** The prefix path; empty for the other kinds. */
    readonly prefix: string,
    readonly regex: RegExp | undefined = undefined,
    /** For a regex: texts one of which every match starts with (regexLiteralPrefixes). */
    readonly literals: readonly string[] = [],
  ) {}
}

/** One path of one route (a route with several paths has one entry per path), with the keys it is ordered by. */
export class RouteEntry {
  constructor(
    readonly route: CompiledRoute,
    readonly matcher: PathMatcher,
    readonly methods: ReadonlySet<string> | undefined,
    readonly plainHosts: ReadonlySet<string> | undefined,
    readonly wildcardHosts: readonly RegExp[] | undefined,
    /** The wildcard hosts as written, lower-cased: the keys of their buckets here. */
    readonly wildcardHostNames: readonly string[] | undefined,
    /** Sort keys, highest first. */
    readonly weight: number,
    readonly plainHostsOnly: number,
    readonly regexPriority: number,
    /** Definition order (lowest first). */
    readonly order: number,
  ) {}
}

/** weight (0–3) × plain-hosts-only (0–1): the groups of the sort, highest first. */
const GROUPS = 8;
const groupOf = (e: RouteEntry) => e.weight * 2 + e.plainHostsOnly;

/** The one place a request's method (and any later per-entry condition) is checked. */
function admits(e: RouteEntry, method: string): boolean {
  return e.methods === undefined || e.methods.has(method);
}

class RadixNode {
  /** Edges by their first character code. */
  children: Map<number, RadixNode> | undefined = undefined;
  /** Prefix paths ending here, by definition order. */
  prefixes: RouteEntry[] = [];
  /** Regexes whose literal prefix ends here, by regex_priority (highest first), then definition order. */
  regexes: RouteEntry[] = [];
  /** The nearest node from here towards the root, this one included, holding prefixes; then the next one above it. */
  prefixChain: RadixNode | undefined = undefined;
  prefixNext: RadixNode | undefined = undefined;
  regexChain: RadixNode | undefined = undefined;
  regexNext: RadixNode | undefined = undefined;

  constructor(
    /** The edge's text from the parent. */
    public label: string,
    /** The length of the key this node ends (the offset in the path after its edge). */
    public readonly end: number,
  ) {}
}

class GroupIndex {
  readonly root = new RadixNode('', 0);
  /** Entries without paths, by definition order. */
  readonly any: RouteEntry[] = [];
}

class HostBucket {
  readonly groups: (GroupIndex | undefined)[] = new Array<GroupIndex | undefined>(GROUPS).fill(undefined);
  /** For a wildcard bucket: the wildcard's regex (the one the scan tests), which confirms a candidate. */
  constructor(readonly wildcard?: RegExp) {}
}

/** Inserts `key` and returns its node, splitting an edge where the key ends or branches inside it. */
function insert(root: RadixNode, key: string): RadixNode {
  let node = root;
  let at = 0;
  while (at < key.length) {
    const c = key.charCodeAt(at);
    const child = node.children?.get(c);
    if (child === undefined) {
      const leaf = new RadixNode(key.slice(at), key.length);
      (node.children ??= new Map()).set(c, leaf);
      return leaf;
    }
    const label = child.label;
    let common = 1;
    while (common < label.length && at + common < key.length && label.charCodeAt(common) === key.charCodeAt(at + common)) common++;
    if (common < label.length) {
      const mid = new RadixNode(label.slice(0, common), at + common);
      child.label = label.slice(common);
      mid.children = new Map([[child.label.charCodeAt(0), child]]);
      node.children!.set(c, mid);
      node = mid;
    } else {
      node = child;
    }
    at += common;
  }
  return node;
}

/** The deepest node whose key is a prefix of `path`: every key on the way up to the root is one too, and no other is. */
function deepest(root: RadixNode, path: string): RadixNode {
  let node = root;
  let at = 0;
  while (at < path.length) {
    const child = node.children?.get(path.charCodeAt(at));
    if (child === undefined || child.end > path.length) break;
    // The first character selected the edge; compare the rest by hand: String.prototype.startsWith is a
    // runtime call here (≈ 60 ns on the bench machine, against a few ns for a short label's loop).
    const label = child.label;
    let k = 1;
    while (k < label.length && label.charCodeAt(k) === path.charCodeAt(at + k)) k++;
    if (k < label.length) break;
    node = child;
    at = child.end;
  }
  return node;
}

function finish(node: RadixNode, prefixAbove: RadixNode | undefined, regexAbove: RadixNode | undefined): void {
  node.prefixes.sort((a, b) => a.order - b.order);
  node.regexes.sort(regexRank);
  node.prefixNext = prefixAbove;
  node.prefixChain = node.prefixes.length ? node : prefixAbove;
  node.regexNext = regexAbove;
  node.regexChain = node.regexes.length ? node : regexAbove;
  if (node.children) for (const child of node.children.values()) finish(child, node.prefixChain, node.regexChain);
}

const regexRank = (a: RouteEntry, b: RouteEntry) => b.regexPriority - a.regexPriority || a.order - b.order;

function firstAdmitted(entries: readonly RouteEntry[], method: string): RouteEntry | undefined {
  for (let i = 0; i < entries.length; i++) if (admits(entries[i], method)) return entries[i];
  return undefined;
}

export class RouteIndex {
  private readonly hostless = new HostBucket();
  private readonly plain = new Map<string, HostBucket>();
  /** `*.example.com` under `.example.com` (the port, when the wildcard names one, included). */
  private readonly suffixWildcards = new Map<string, HostBucket>();
  /** `example.*` and `example.*:8080` under `example.`. */
  private readonly prefixWildcards = new Map<string, HostBucket[]>();
  /** The distinct lengths of those keys. */
  private readonly suffixLengths: readonly number[];
  private readonly prefixLengths: readonly number[];
  /** Any other wildcard shape (the schema admits none): tested one by one. */
  private readonly otherWildcards: HostBucket[] = [];
  private readonly hostRoutes: boolean;
  private readonly wildcards: boolean;
  /** The groups some bucket has entries in, highest first. */
  private readonly groups: readonly number[];

  // Scratch space of find(), reused: matching is synchronous, so no two finds overlap.
  private readonly buckets: HostBucket[] = [];
  private readonly walked: (RadixNode | undefined)[] = [];
  /** How much of the path the entry returned by the last find() matched. */
  matchedLength = 0;

  constructor(entries: readonly RouteEntry[]) {
    const wildcardBuckets = new Map<string, HostBucket>();
    for (const e of entries) {
      const g = groupOf(e);
      const place = (bucket: HostBucket) => {
        const index = (bucket.groups[g] ??= new GroupIndex());
        const m = e.matcher;
        if (m.kind === 'exactOrPrefix') insert(index.root, m.prefix).prefixes.push(e);
        else if (m.kind === 'regex') for (const literal of m.literals) insert(index.root, literal).regexes.push(e);
        else index.any.push(e);
      };
      if (!e.plainHosts && !e.wildcardHosts) {
        place(this.hostless);
        continue;
      }
      for (const host of e.plainHosts ?? []) {
        let bucket = this.plain.get(host);
        if (!bucket) this.plain.set(host, (bucket = new HostBucket()));
        place(bucket);
      }
      const names = e.wildcardHostNames ?? [];
      new Set(names).forEach((name) => {
        let bucket = wildcardBuckets.get(name);
        if (!bucket) {
          bucket = new HostBucket(e.wildcardHosts![names.indexOf(name)]);
          wildcardBuckets.set(name, bucket);
          this.addWildcard(name, bucket);
        }
        place(bucket);
      });
    }
    const present = new Set<number>();
    for (const bucket of [this.hostless, ...this.plain.values(), ...wildcardBuckets.values()]) {
      for (const [g, index] of bucket.groups.entries()) {
        if (!index) continue;
        present.add(g);
        finish(index.root, undefined, undefined);
        index.any.sort((a, b) => a.order - b.order);
      }
    }
    this.groups = [...present].sort((a, b) => b - a);
    this.suffixLengths = [...new Set([...this.suffixWildcards.keys()].map((k) => k.length))];
    this.prefixLengths = [...new Set([...this.prefixWildcards.keys()].map((k) => k.length))];
    this.hostRoutes = this.plain.size > 0 || wildcardBuckets.size > 0;
    this.wildcards = wildcardBuckets.size > 0;
    this.buckets.push(this.hostless);
  }

  /**
   * A wildcard matches a host only if the host contains its fixed part around
   * a dot: `*.example.com` needs a host ending in `.example.com` after at
   * least one character, `example.*` a host starting with `example.` and
   * longer than that; both are then confirmed by the wildcard's regex.
   */
  private addWildcard(name: string, bucket: HostBucket): void {
    const star = name.indexOf('*');
    const single = name.indexOf('*', star + 1) === -1;
    if (single && star === 0 && name.charCodeAt(1) === 46 /* . */) {
      this.suffixWildcards.set(name.slice(1), bucket);
    } else if (single && star > 1 && name.charCodeAt(star - 1) === 46) {
      const key = name.slice(0, star);
      const list = this.prefixWildcards.get(key);
      if (list) list.push(bucket);
      else this.prefixWildcards.set(key, [bucket]);
    } else {
      this.otherWildcards.push(bucket);
    }
  }

  /**
   * The entry the ordered scan would return, or undefined; `matchedLength`
   * then holds how much of the path it matched.
   *
   * @param host the Host header as received (any case, may carry a port)
   */
  find(method: string, host: string | undefined, path: string): RouteEntry | undefined {
    const buckets = this.buckets;
    const count = this.hostRoutes && host ? this.collectHostBuckets(host) : 1;
    const walked = this.walked;
    const groups = this.groups;
    for (let k = 0; k < groups.length; k++) {
      const g = groups[k];
      let prefix: RouteEntry | undefined;
      let prefixLength = -1;
      let any: RouteEntry | undefined;
      let regexes = false;
      for (let i = 0; i < count; i++) {
        const index = buckets[i].groups[g];
        if (index === undefined) {
          walked[i] = undefined;
          continue;
        }
        const node = deepest(index.root, path);
        walked[i] = node;
        if (node.regexChain !== undefined) regexes = true;
        // The longest admitted prefix of this bucket; across buckets, longer then earlier wins.
        for (let n = node.prefixChain; n !== undefined && n.end >= prefixLength; n = n.prefixNext) {
          const e = firstAdmitted(n.prefixes, method);
          if (e === undefined) continue;
          if (n.end > prefixLength || e.order < prefix!.order) {
            prefix = e;
            prefixLength = n.end;
          }
          break;
        }
        if (index.any.length) {
          const e = firstAdmitted(index.any, method);
          if (e !== undefined && (any === undefined || e.order < any.order)) any = e;
        }
      }
      // A prefix equal to the whole path beats every regex of its group.
      if (prefix !== undefined && prefixLength === path.length) {
        this.matchedLength = prefixLength;
        return prefix;
      }
      if (regexes) {
        const e = this.bestRegex(count, method, path);
        if (e !== undefined) return e;
      }
      if (prefix !== undefined) {
        this.matchedLength = prefixLength;
        return prefix;
      }
      if (any !== undefined) {
        this.matchedLength = 0;
        return any;
      }
    }
    return undefined;
  }

  /** The first regex, in the scan's order, whose literal prefix the path starts with and which matches. */
  private bestRegex(count: number, method: string, path: string): RouteEntry | undefined {
    let best: RouteEntry | undefined;
    let length = 0;
    for (let i = 0; i < count; i++) {
      for (let n = this.walked[i]?.regexChain; n !== undefined; n = n.regexNext) {
        const list = n.regexes;
        for (let j = 0; j < list.length; j++) {
          const e = list[j];
          // The list is in rank order: once an entry cannot outrank the best so far, none after it can.
          if (best !== undefined && regexRank(e, best) >= 0) break;
          if (!admits(e, method)) continue;
          const m = e.matcher.regex!.exec(path);
          if (m !== null) {
            best = e;
            length = m[0].length;
            break;
          }
        }
      }
    }
    this.matchedLength = length;
    return best;
  }

  /** Fills `buckets` after the hostless one with those the Host admits; returns their count. */
  private collectHostBuckets(host: string): number {
    const withPort = host.toLowerCase();
    const hostOnly = stripPort(withPort);
    if (!withPort || !hostOnly) return 1;
    let count = this.addHostBuckets(hostOnly, 1);
    if (withPort !== hostOnly) count = this.addHostBuckets(withPort, count);
    return count;
  }

  private addHostBuckets(host: string, count: number): number {
    const plain = this.plain.get(host);
    if (plain !== undefined) count = this.add(plain, count);
    if (!this.wildcards) return count;
    // One lookup per distinct key length whose position holds the dot, rather than one per dot of the host.
    for (const length of this.suffixLengths) {
      const at = host.length - length;
      if (at < 1 || host.charCodeAt(at) !== 46 /* . */) continue;
      const b = this.suffixWildcards.get(host.slice(at));
      if (b !== undefined && b.wildcard!.test(host)) count = this.add(b, count);
    }
    for (const length of this.prefixLengths) {
      if (length >= host.length || host.charCodeAt(length - 1) !== 46) continue;
      const list = this.prefixWildcards.get(host.slice(0, length));
      if (list !== undefined) for (const b of list) if (b.wildcard!.test(host)) count = this.add(b, count);
    }
    for (const b of this.otherWildcards) if (b.wildcard!.test(host)) count = this.add(b, count);
    return count;
  }

  private add(bucket: HostBucket, count: number): number {
    for (let i = 1; i < count; i++) if (this.buckets[i] === bucket) return count;
    this.buckets[count] = bucket;
    return count + 1;
  }
}

export function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * Kong turns each `*` of a wildcard host into `.+`: `*.example.com` matches
 * `a.example.com` and `a.b.example.com`; `example.*` matches `example.com` and
 * `example.co.uk`.
 */
export function wildcardToRegex(host: string): RegExp {
  const escaped = host.toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace('*', '.+')}$`);
}

/** At most this many literal prefixes per regex; beyond, their common prefix stands for them. */
const MAX_LITERALS = 16;

/**
 * Texts one of which every match of the anchored regex `^(?:source)` starts
 * with: `/users/` for `/users/\d+`; `/a.b` for `/a\.b(/|$)`; `/legacy/x` and
 * `/old/x` for `/(?:legacy|old)/x`. A regex is placed in the radix tree at each
 * of them; a path that starts with none cannot match, so the regex is not run.
 *
 * Conservative: a sequence stops at the first term that is not a plain
 * literal or an unquantified group (class, `.`, anchor, lookaround, escape
 * other than of punctuation), a literal that a quantifier follows is left out
 * (`/ab?` gives `/a`), alternatives (`|`, at the top or in a group) each give
 * their own prefix, and more than MAX_LITERALS of them collapse to their common
 * prefix. An empty text (the root) stands for "any path".
 */
export function regexLiteralPrefixes(source: string): string[] {
  let texts = alternatives(source).map((t) => t.text);
  if (texts.length > MAX_LITERALS) texts = [commonPrefix(texts)];
  // Keep only the shortest of texts that extend one another: a path reaching the longer one passes the shorter.
  texts = [...new Set(texts)].sort((a, b) => a.length - b.length);
  return texts.filter((t, i) => !texts.slice(0, i).some((shorter) => t.startsWith(shorter)));
}

interface Literal {
  text: string;
  /** The whole alternative is this literal text, so a following term may extend it. */
  complete: boolean;
}

function alternatives(source: string): Literal[] {
  return splitAlternatives(source).flatMap(sequence);
}

/** The literal prefixes of a sequence without top-level `|`. */
function sequence(source: string): Literal[] {
  let states: Literal[] = [{ text: '', complete: true }];
  const extend = (fn: (s: Literal) => Literal[]) => (states = states.flatMap((s) => (s.complete ? fn(s) : [s])));
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    let term: Literal[];
    let next: number;
    if (c === '\\') {
      const escaped = source[i + 1];
      // An escaped ASCII punctuation character is that character; \d, \w, \b, \1, \u… are not literals.
      if (escaped === undefined || !/^[!-/:-@[-`{-~]$/.test(escaped)) break;
      term = [{ text: escaped, complete: true }];
      next = i + 2;
    } else if (c === '(') {
      const close = closingParen(source, i);
      if (close === -1) break;
      const inner = source.slice(i + 1, close);
      // (…), (?:…) and (?<name>…) consume what they match; lookarounds (?= (?! (?<= (?<! do not.
      const body = inner.startsWith('?:') ? inner.slice(2) : /^\?<[A-Za-z_$][\w$]*>/.test(inner) ? inner.slice(inner.indexOf('>') + 1) : inner.startsWith('?') ? undefined : inner;
      if (body === undefined) break;
      term = alternatives(body);
      next = close + 1;
    } else if ('^$.|?*+)[]{}'.includes(c)) {
      break;
    } else {
      term = [{ text: c, complete: true }];
      next = i + 1;
    }
    const after = source[next];
    if (after === '?' || after === '*' || after === '+' || after === '{') break;
    extend((s) => term.map((t) => ({ text: s.text + t.text, complete: t.complete })));
    if (states.length > MAX_LITERALS) return [{ text: commonPrefix(states.map((s) => s.text)), complete: false }];
    i = next;
  }
  if (i < source.length) states = states.map((s) => ({ text: s.text, complete: false }));
  return states;
}

/** The parts of `source` between `|` outside every group and class (JavaScript syntax, no `u` flag). */
function splitAlternatives(source: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let inClass = false;
  let start = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth <= 0) {
      parts.push(source.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(source.slice(start));
  return parts;
}

/** The index of the `)` closing the group opened at `open`, or -1. */
function closingParen(source: string, open: number): number {
  let depth = 0;
  let inClass = false;
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

function commonPrefix(texts: readonly string[]): string {
  let prefix = texts[0] ?? '';
  for (const t of texts) while (!t.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}
