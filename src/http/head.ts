import { badFieldValue, isToken } from './request-rules.js';

/**
 * HTTP/1.1 header lines as the front door and the proxy lane read them: one tokenizer for
 * request and response heads, so both refuse the same odd lines (and leave them to Node's
 * parser, or answer 502). What it refuses is what Node's llhttp refuses: a name that is not a
 * token (RFC 9110 §5.1), a value with a control character other than HTAB (RFC 9110 §5.5).
 */

/**
 * The header lines of a head from `from` on: lower-case names, the lines as sent (forwarded
 * byte for byte) and each line's colon offset; null when a line is not `token: value` (a folded
 * line, a space or separator in a name, NUL, bare CR or LF, DEL in a value).
 */
export function headerLines(text: string, from: number): { names: string[]; lines: string[]; colons: number[] } | null {
  const names: string[] = [];
  const lines: string[] = [];
  const colons: number[] = [];
  let pos = from;
  while (pos < text.length) {
    let next = text.indexOf('\r\n', pos);
    if (next < 0) next = text.length;
    const colon = text.indexOf(':', pos);
    if (colon <= pos || colon > next) return null;
    const name = text.slice(pos, colon).toLowerCase();
    if (!isToken(name)) return null;
    const line = text.slice(pos, next);
    if (badFieldValue(line)) return null;
    names.push(name);
    lines.push(line);
    colons.push(colon - pos);
    pos = next + 2;
  }
  return { names, lines, colons };
}
