/**
 * Access lines encoded into chunks as they arrive, for the sink to hand to one writev(2). A line
 * costs one encode into memory already allocated and leaves no string behind: measured on 1 KB
 * answers, holding the lines as strings until a flush joined them was half of the log's cost per
 * request (the join, the encode, and the young-generation collections that found the strings
 * still alive).
 */

/** Chunks are at most this large (and at least MIN_CHUNK_BYTES): a flush by time then allocates little. */
const MAX_CHUNK_BYTES = 64 * 1024;
const MIN_CHUNK_BYTES = 16 * 1024;

export class LineBatch {
  /** Lines waiting. */
  lines = 0;
  /** Their encoded bytes, newlines included. */
  bytes = 0;
  private chunks: Buffer[] = [];
  private cur: Buffer | null = null;
  private used = 0;
  private readonly chunkBytes: number;

  constructor(bufferBytes: number) {
    this.chunkBytes = Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, bufferBytes));
  }

  add(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
    const worst = line.length * 3 + 1;
    if (this.cur === null || this.used + worst > this.cur.length) {
      this.seal();
      if (worst > this.chunkBytes) {
        // A line longer than a chunk (a long URL and User-Agent): a buffer of its own.
        const b = Buffer.from(`${line}\n`);
        this.chunks.push(b);
        this.bytes += b.length;
        this.lines++;
        return;
      }
      this.cur = Buffer.allocUnsafeSlow(this.chunkBytes);
    }
    const n = this.cur.write(line, this.used, 'utf8');
    this.cur[this.used + n] = 0x0a;
    this.used += n + 1;
    this.bytes += n + 1;
    this.lines++;
  }

  /** Everything waiting, in order, as written; the batch is empty after. */
  take(): { data: Buffer[]; lines: number } {
    this.seal();
    const out = { data: this.chunks, lines: this.lines };
    this.chunks = [];
    this.lines = 0;
    this.bytes = 0;
    return out;
  }

  private seal(): void {
    if (this.cur !== null && this.used > 0) this.chunks.push(this.cur.subarray(0, this.used));
    this.cur = null;
    this.used = 0;
  }
}

/** `bufs` without their first `n` bytes (what a short write already wrote). */
export function skipBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
  const rest = bufs.slice(i);
  if (rest.length > 0 && n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}
