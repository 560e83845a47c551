/**
 * One byte range of RFC 9110 §14.1.2. Returns null when the header is to be ignored (not a bytes
 * range, malformed, or several ranges: we answer those with the whole file, which §14.2 allows),
 * 'unsatisfiable' for a range past the end (416).
 */
export function parseRange(header: string, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  // An empty file has no byte to cut: NGINX ignores the Range (200) rather than answer 416, and
  // RFC 9110 §14.2 lets a server ignore Range, so a zero-length file is always sent whole.
  if (size === 0) return null;
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!m) return null;
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  let end = b === '' ? size - 1 : Number(b);
  if (b !== '' && end < start) return null;
  if (start >= size) return 'unsatisfiable';
  if (end >= size) end = size - 1;
  return { start, end };
}
