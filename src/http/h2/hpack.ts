import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman-table.js';

/**
 * HPACK (RFC 7541): a decoder with the dynamic table and Huffman strings, for requests, and a
 * stateless encoder (static-table indexes and literals that are never added to a table) for
 * responses. Names and values are kept as latin1 strings, one character per octet, so whatever
 * bytes a peer sent are the bytes passed on.
 */

export class HpackError extends Error {}

/** A header field: [name, value]. */
export type Field = [string, string];

/** RFC 7541 Appendix A. */
const STATIC: readonly Field[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** Per-entry overhead in the table size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;
/** Integers past this are an attack or a bug: no length, index or size in HTTP/2 comes near it. */
const MAX_INT = 0x7fffffff;

// ---- Huffman ---------------------------------------------------------------------------------

/**
 * The code as a binary tree in a flat array: node n's children are at 2n and 2n+1; a child
 * below zero is the leaf of symbol -(child + 1); zero is "no child yet" (the root is never a child).
 */
const TREE = buildTree();

function buildTree(): Int32Array {
  const tree = new Int32Array(2 * 512);
  let nodes = 1;
  for (let sym = 0; sym < HUFFMAN_CODES.length; sym++) {
    const code = HUFFMAN_CODES[sym];
    const len = HUFFMAN_LENGTHS[sym];
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const slot = 2 * node + ((code / 2 ** i) & 1);
      if (i === 0) tree[slot] = -(sym + 1);
      else {
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot];
      }
    }
  }
  return tree;
}

/** RFC 7541 §5.2: padding is the most significant bits of EOS (all ones), at most 7 of them; EOS itself is an error. */
export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  let out = '';
  let node = 0;
  let pad = 0;
  let ones = true;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      const next = TREE[2 * node + bit];
      pad++;
      if (bit === 0) ones = false;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === 256) throw new HpackError('EOS in a Huffman string');
        out += String.fromCharCode(sym);
        node = 0;
        pad = 0;
        ones = true;
      } else {
        node = next;
      }
    }
  }
  if (pad > 7 || !ones) throw new HpackError('bad Huffman padding');
  return out;
}

// ---- decoding --------------------------------------------------------------------------------

/** Reads an integer with an N-bit prefix (RFC 7541 §5.1); returns [value, next offset]. */
function readInt(buf: Buffer, pos: number, end: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let v = buf[pos++] & max;
  if (v < max) return [v, pos];
  let shift = 0;
  for (;;) {
    if (pos >= end) throw new HpackError('truncated integer');
    const b = buf[pos++];
    v += (b & 0x7f) * 2 ** shift;
    if (v > MAX_INT) throw new HpackError('integer too large');
    if ((b & 0x80) === 0) return [v, pos];
    shift += 7;
  }
}

export class Decoder {
  /** Newest first. */
  private table: Field[] = [];
  private size = 0;
  /** The size the peer's encoder currently uses: at most `limit`. */
  private max: number;

  /** `limit` is our SETTINGS_HEADER_TABLE_SIZE (RFC 7541 §4.2: updates above it are errors). */
  constructor(private readonly limit = 4096) {
    this.max = limit;
  }

  /**
   * Decodes one complete header block. `maxListBytes` bounds the decoded list (name + value + 32
   * per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts): past it decoding goes on, to keep the
   * table in step, and the result is flagged `tooLarge`.
   */
  decode(buf: Buffer, maxListBytes = Infinity): { fields: Field[]; tooLarge: boolean } {
    const fields: Field[] = [];
    let pos = 0;
    const end = buf.length;
    let listBytes = 0;
    let tooLarge = false;
    let first = true;
    while (pos < end) {
      const b = buf[pos];
      let field: Field;
      if (b & 0x80) {
        let idx: number;
        [idx, pos] = readInt(buf, pos, end, 7);
        field = this.entry(idx);
      } else if ((b & 0xe0) === 0x20) {
        // §4.2: size updates only at the start of a block.
        if (!first) throw new HpackError('table size update after the first field');
        let size: number;
        [size, pos] = readInt(buf, pos, end, 5);
        if (size > this.limit) throw new HpackError('table size update above the limit');
        this.max = size;
        this.evict(0);
        continue;
      } else {
        const incremental = (b & 0xc0) === 0x40;
        let idx: number;
        [idx, pos] = readInt(buf, pos, end, incremental ? 6 : 4);
        let name: string;
        if (idx === 0) [name, pos] = this.readString(buf, pos, end);
        else name = this.entry(idx)[0];
        let value: string;
        [value, pos] = this.readString(buf, pos, end);
        field = [name, value];
        if (incremental) this.add(field);
      }
      first = false;
      listBytes += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listBytes > maxListBytes) tooLarge = true;
      else fields.push(field);
    }
    return { fields, tooLarge };
  }

  private entry(idx: number): Field {
    if (idx === 0) throw new HpackError('index 0');
    if (idx <= STATIC.length) return STATIC[idx - 1];
    const e = this.table[idx - STATIC.length - 1];
    if (e === undefined) throw new HpackError(`index ${idx} beyond the table`);
    return e;
  }

  private readString(buf: Buffer, pos: number, end: number): [string, number] {
    if (pos >= end) throw new HpackError('truncated string');
    const huffman = (buf[pos] & 0x80) !== 0;
    let len: number;
    [len, pos] = readInt(buf, pos, end, 7);
    if (pos + len > end) throw new HpackError('truncated string');
    const s = huffman ? huffmanDecode(buf, pos, pos + len) : buf.toString('latin1', pos, pos + len);
    return [s, pos + len];
  }

  private add(f: Field): void {
    const size = f[0].length + f[1].length + ENTRY_OVERHEAD;
    // §4.4: an entry larger than the table empties it and is not added.
    this.evict(size);
    if (size <= this.max) {
      this.table.unshift(f);
      this.size += size;
    }
  }

  /** Evicts oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.max) {
      const old = this.table.pop()!;
      this.size -= old[0].length + old[1].length + ENTRY_OVERHEAD;
    }
  }
}

// ---- encoding --------------------------------------------------------------------------------

const STATIC_NAME = new Map<string, number>();
const STATIC_PAIR = new Map<string, number>();
for (let i = STATIC.length - 1; i >= 0; i--) {
  STATIC_NAME.set(STATIC[i][0], i + 1);
  if (STATIC[i][1] !== '') STATIC_PAIR.set(`${STATIC[i][0]}\0${STATIC[i][1]}`, i + 1);
}

/** Appends an integer with an N-bit prefix whose high bits are `first`. */
function pushInt(out: number[], first: number, prefixBits: number, v: number): void {
  const max = (1 << prefixBits) - 1;
  if (v < max) {
    out.push(first | v);
    return;
  }
  out.push(first | max);
  v -= max;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function pushString(out: number[], s: string): void {
  pushInt(out, 0, 7, s.length);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * Encodes fields without touching any dynamic table: a full static match as an index, else a
 * literal without indexing (§6.2.2), its name by static index where there is one. Without a
 * table there is no state to share with the peer, so a block can be cached and reused on any
 * connection. Names must already be lower case (RFC 9113 §8.2.1).
 */
export function encode(fields: Iterable<Field>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const pair = STATIC_PAIR.get(`${name}\0${value}`);
    if (pair !== undefined) {
      pushInt(out, 0x80, 7, pair);
      continue;
    }
    const idx = STATIC_NAME.get(name);
    if (idx !== undefined) pushInt(out, 0x00, 4, idx);
    else {
      out.push(0x00);
      pushString(out, name);
    }
    pushString(out, value);
  }
  return Buffer.from(out);
}

/** A dynamic table size update to 0 (§6.3): what an encoder that never indexes sends after the peer changes its table size. */
export const TABLE_SIZE_ZERO = Buffer.from([0x20]);
