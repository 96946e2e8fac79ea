/**
 * The keys that occur more than once in one object of a JSON text, as dotted
 * paths (`"a"`, `"err.message"`). JSON.parse keeps the last of duplicate keys
 * without a word (RFC 8259 §4 leaves duplicates to the parser), so a log line
 * with two `service` keys parses fine and silently loses one: this scanner reads
 * the text itself. The text must be valid JSON (callers JSON.parse it first).
 */
export function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  let i = 0;
  const skipWhitespace = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const expect = (ch: string) => {
    if (text[i] !== ch) throw new Error(`expected ${ch} at ${i} in ${text}`);
    i++;
  };
  const string = (): string => {
    const start = i;
    expect('"');
    while (text[i] !== '"') {
      if (i >= text.length) throw new Error(`unterminated string in ${text}`);
      i += text[i] === '\\' ? 2 : 1;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    skipWhitespace();
    const ch = text[i];
    if (ch === '{') {
      i++;
      const keys = new Set<string>();
      skipWhitespace();
      if (text[i] === '}') return void i++;
      for (;;) {
        skipWhitespace();
        const key = string();
        if (keys.has(key)) found.push(path + key);
        keys.add(key);
        skipWhitespace();
        expect(':');
        value(`${path}${key}.`);
        skipWhitespace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        return expect('}');
      }
    }
    if (ch === '[') {
      i++;
      skipWhitespace();
      if (text[i] === ']') return void i++;
      for (let n = 0; ; n++) {
        value(`${path}${n}.`);
        skipWhitespace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        return expect(']');
      }
    }
    if (ch === '"') return void string();
    // A number, true, false or null.
    while (i < text.length && !',}] \t\n\r'.includes(text[i])) i++;
  };
  value('');
  return found;
}
