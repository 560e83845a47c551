import { trailerAllowed } from './headers.js';

/**
 * The chunked framing of an upstream's response body (RFC 9112 §7.1), walked as it is relayed:
 * the lane passes the bytes on untouched and only needs to know where the body ends, whether
 * the framing is sound, and the trailer section for a client that reads trailers.
 */

/** Chunk-size lines and trailer sections are bounded: past this it is not HTTP. */
const MAX_CHUNK_LINE_BYTES = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;
/** Hex digits of a chunk size: 12 is 256 TiB, well inside a double's exact integers. */
const MAX_CHUNK_SIZE_DIGITS = 12;

/** Where the decoder is. */
const enum Chunk { Size, Ext, SizeLf, Data, DataCr, DataLf, Trailer }

/** The body went on past the bytes given. */
export const CHUNKS_MORE = -1;
/** The framing is broken. */
export const CHUNKS_BROKEN = -2;

export class ChunkedBody {
  private cs = Chunk.Size;
  private csize = 0;
  /** Digits of the size being read; in the trailer section, its bytes so far. */
  private cdigits = 0;
  private cline = 0;
  /** The trailer section, kept while it arrives for a client that reads trailers (at most MAX_TRAILER_BYTES). */
  private trailerParts: Buffer[] | null = null;

  /** `keepTrailers`: the client reads trailers, so the section is kept for trailerSection(). */
  constructor(private readonly keepTrailers: boolean) {}

  /**
   * Walks the framing in `b` from `from`, handing `relay` the bytes up to and including the last
   * chunk's size line. Returns CHUNKS_MORE when the body goes on, the index after the trailer
   * section when it ended, CHUNKS_BROKEN when the framing is broken.
   */
  walk(b: Buffer, from: number, relay: (part: Buffer) => void): number {
    let i = from;
    const len = b.length;
    let relayTo = this.cs === Chunk.Trailer ? from : len;
    while (i < len) {
      switch (this.cs) {
        case Chunk.Data: {
          const n = Math.min(this.csize, len - i);
          i += n;
          this.csize -= n;
          if (this.csize === 0) this.cs = Chunk.DataCr;
          continue;
        }
        case Chunk.DataCr:
          if (b[i++] !== 0x0d) return CHUNKS_BROKEN;
          this.cs = Chunk.DataLf;
          continue;
        case Chunk.DataLf:
          if (b[i++] !== 0x0a) return CHUNKS_BROKEN;
          this.cs = Chunk.Size;
          this.csize = 0;
          this.cdigits = 0;
          this.cline = 0;
          continue;
        case Chunk.Trailer: {
          // Trailer lines up to the empty line: kept for a client that reads them, else skipped.
          const c = b[i++];
          if (c === 0x0a) {
            if (this.cline === 0) {
              if (relayTo > from) relay(b.subarray(from, relayTo));
              // Copied: the bytes read are the connection's buffer, reused by its next read.
              this.trailerParts?.push(Buffer.from(b.subarray(relayTo, i)));
              return i;
            }
            this.cline = 0;
          } else if (c !== 0x0d) {
            this.cline++;
            if (++this.cdigits > MAX_TRAILER_BYTES) return CHUNKS_BROKEN;
          }
          continue;
        }
        default: {
          const at = this.sizeLine(b[i++]);
          if (at === CHUNKS_BROKEN) return CHUNKS_BROKEN;
          if (at === 1) relayTo = i;
        }
      }
    }
    if (relayTo > from) relay(from === 0 && relayTo === len ? b : b.subarray(from, relayTo));
    if (this.trailerParts !== null && relayTo < len) this.trailerParts.push(Buffer.from(b.subarray(relayTo, len)));
    return CHUNKS_MORE;
  }

  /** One byte of a chunk-size line (size, extension, CRLF): 1 when it ended the last chunk's line, 0 to go on. */
  private sizeLine(c: number): number {
    if (++this.cline > MAX_CHUNK_LINE_BYTES) return CHUNKS_BROKEN;
    if (this.cs === Chunk.Size) {
      const d = hexDigit(c);
      if (d >= 0) {
        if (++this.cdigits > MAX_CHUNK_SIZE_DIGITS) return CHUNKS_BROKEN;
        this.csize = this.csize * 16 + d;
        return 0;
      }
      if (this.cdigits === 0) return CHUNKS_BROKEN;
      if (c === 0x3b || c === 0x20 || c === 0x09) {
        this.cs = Chunk.Ext;
        return 0;
      }
    } else if (this.cs === Chunk.Ext) {
      if (c !== 0x0d && c !== 0x0a) return 0;
    }
    if (this.cs !== Chunk.SizeLf) {
      if (c !== 0x0d) return CHUNKS_BROKEN;
      this.cs = Chunk.SizeLf;
      return 0;
    }
    if (c !== 0x0a) return CHUNKS_BROKEN;
    this.cline = 0;
    if (this.csize !== 0) {
      this.cs = Chunk.Data;
      return 0;
    }
    this.cs = Chunk.Trailer;
    this.cdigits = 0;
    if (this.keepTrailers) this.trailerParts = [];
    return 1;
  }

  /**
   * The trailer section for the client (after the last chunk's size line, empty line included):
   * each field that may travel in a trailer and parses cleanly, then the empty line; just the
   * empty line for a client that does not read trailers. A malformed line is dropped, not
   * relayed: the body is already whole.
   */
  trailerSection(): string {
    if (this.trailerParts === null) return '\r\n';
    let out = '';
    for (const line of Buffer.concat(this.trailerParts).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (trailerAllowed(name, value)) out += `${line.slice(0, colon)}: ${value}\r\n`;
    }
    return `${out}\r\n`;
  }
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}
