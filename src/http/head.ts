/**
 * HTTP/1.1 header lines as the front door and the proxy lane read them: one tokenizer for
 * request and response heads, so both refuse the same odd lines (and leave them to Node's
 * parser, or answer 502).
 */

/**
 * The header lines of a head from `from` on: lower-case names, the lines as sent (forwarded
 * byte for byte) and each line's colon offset; null when a line is not `token: value` (a folded
 * line, a space or control character in a name).
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
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f) return null;
    }
    names.push(name);
    lines.push(text.slice(pos, next));
    colons.push(colon - pos);
    pos = next + 2;
  }
  return { names, lines, colons };
}
