import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** One directive of SRS's nginx-like grammar: `name args…;` or `name args… { children }`. */
export interface Directive {
  name: string;
  args: string[];
  /** null for a simple directive; the list (possibly empty) for a block. */
  children: Directive[] | null;
  file: string;
  line: number;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(line > 0 ? `${file}:${line}: ${detail}` : `${file}: ${detail}`);
  }
}

/** include may nest, but a loop must end with an error rather than a stack overflow. */
const MAX_INCLUDE_DEPTH = 16;

type Token = { kind: 'word' | ';' | '{' | '}'; text: string; line: number };

/** SRS's lexer: words, quoted strings (no escapes), `;`, `{`, `}`, and `#` comments to end of line. */
function lex(text: string, file: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === ';' || c === '{' || c === '}') {
      out.push({ kind: c, text: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      const start = line;
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new ConfigError(file, start, `unterminated ${c === '"' ? 'double' : 'single'}-quoted string`);
      const value = text.slice(i + 1, end);
      for (const ch of value) if (ch === '\n') line++;
      out.push({ kind: 'word', text: value, line: start });
      i = end + 1;
    } else {
      const start = i;
      while (i < n && !' \t\r\n;{}#"\''.includes(text[i])) i++;
      out.push({ kind: 'word', text: text.slice(start, i), line });
    }
  }
  return out;
}

/** Parses a config file into its directive tree, expanding `include file;` in place. */
export function parseFile(file: string, depth = 0, readFile = (f: string) => readFileSync(f, 'utf8')): Directive[] {
  let text: string;
  try {
    text = readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(file, 0, `cannot read config file (${code})`);
  }
  return parseText(text, file, depth, readFile);
}

export function parseText(
  text: string,
  file: string,
  depth = 0,
  readFile = (f: string) => readFileSync(f, 'utf8'),
): Directive[] {
  const tokens = lex(text, file);
  let pos = 0;

  const block = (closer: Token | null): Directive[] => {
    const list: Directive[] = [];
    for (;;) {
      const t = tokens[pos];
      if (t === undefined) {
        if (closer) throw new ConfigError(file, closer.line, `block "${closer.text}" opened here is never closed: expected "}"`);
        return list;
      }
      if (t.kind === '}') {
        if (!closer) throw new ConfigError(file, t.line, 'unexpected "}"');
        pos++;
        return list;
      }
      if (t.kind !== 'word') throw new ConfigError(file, t.line, `unexpected "${t.text}": expected a directive name`);
      pos++;
      const args: string[] = [];
      for (;;) {
        const a = tokens[pos];
        if (a === undefined) throw new ConfigError(file, t.line, `directive "${t.text}" is not terminated by ";"`);
        pos++;
        if (a.kind === 'word') {
          args.push(a.text);
        } else if (a.kind === ';') {
          if (t.text === 'include') {
            if (args.length !== 1) throw new ConfigError(file, t.line, 'include takes exactly one file');
            if (depth >= MAX_INCLUDE_DEPTH) throw new ConfigError(file, t.line, `include nested deeper than ${MAX_INCLUDE_DEPTH} (a loop?)`);
            let included: Directive[];
            try {
              included = parseFile(resolve(dirname(file), args[0]), depth + 1, readFile);
            } catch (err) {
              // A file that cannot be read has no line of its own to blame: name the include.
              if (err instanceof ConfigError && err.line === 0) throw new ConfigError(file, t.line, `include "${args[0]}": ${err.detail}`);
              throw err;
            }
            list.push(...included);
          } else {
            list.push({ name: t.text, args, children: null, file, line: t.line });
          }
          break;
        } else if (a.kind === '{') {
          const children = block({ ...t, text: t.text });
          list.push({ name: t.text, args, children, file, line: t.line });
          break;
        } else {
          throw new ConfigError(file, a.line, `directive "${t.text}" is not terminated by ";"`);
        }
      }
    }
  };
  return block(null);
}
