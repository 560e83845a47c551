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
  /** Where the next line goes in `cur`. */
  used = 0;
  /** `cur` holds one long line only. */
  private single = false;
  private readonly chunkBytes: number;

  constructor(bufferBytes: number) {
    this.chunkBytes = Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, bufferBytes));
  }

  add(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
    const buf = this.reserve(line.length * 3 + 1);
    const n = buf.write(line, this.used, 'utf8');
    buf[this.used + n] = 0x0a;
    this.commit(this.used + n + 1);
  }

  /**
   * Room for a line of at most `max` bytes: write it into the returned chunk from `used` on,
   * then commit() where it ends. A line longer than a chunk (a long URL and User-Agent) gets a
   * buffer of its own.
   */
  reserve(max: number): Buffer {
    const cur = this.cur;
    if (cur !== null && this.used + max <= cur.length) return cur;
    this.seal();
    this.single = max > this.chunkBytes;
    this.cur = Buffer.allocUnsafeSlow(this.single ? max : this.chunkBytes);
    return this.cur;
  }

  /** The line reserve() made room for ends at `end` (its newline included). */
  commit(end: number): void {
    this.bytes += end - this.used;
    this.used = end;
    this.lines++;
    if (this.single) this.seal();
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
