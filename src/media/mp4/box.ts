/**
 * ISO base media file format boxes (ISO/IEC 14496-12 §4.2): a 32-bit size, a four-character type,
 * the payload; a "full box" adds a version byte and 24 bits of flags. Pure byte building.
 */

export class Mp4Error extends Error {}

/** A box of `type` around the given payload parts. */
export function box(type: string, ...parts: readonly Buffer[]): Buffer {
  let size = 8;
  for (const p of parts) size += p.length;
  if (size > 0xffffffff) throw new Mp4Error(`${type} box of ${size} bytes does not fit a 32-bit size`);
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(size, 0);
  head.write(type, 4, 4, 'latin1');
  return Buffer.concat([head, ...parts], size);
}

/** A full box: version and flags before the payload (§4.2). */
export function fullBox(type: string, version: number, flags: number, ...parts: readonly Buffer[]): Buffer {
  const vf = Buffer.allocUnsafe(4);
  vf.writeUInt32BE(((version & 0xff) << 24 | (flags & 0xffffff)) >>> 0, 0);
  return box(type, vf, ...parts);
}

export function u8(...v: number[]): Buffer {
  return Buffer.from(v);
}

export function u16(...v: number[]): Buffer {
  const b = Buffer.allocUnsafe(2 * v.length);
  v.forEach((x, i) => b.writeUInt16BE(x & 0xffff, 2 * i));
  return b;
}

export function u32(...v: number[]): Buffer {
  const b = Buffer.allocUnsafe(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x >>> 0, 4 * i));
  return b;
}

export function u64(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(v), 0);
  return b;
}

export function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}

/** The unity transformation matrix of mvhd/tkhd (§8.2.2.3): 16.16 fixed, 2.30 for the last column. */
export const UNITY_MATRIX = u32(0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000);

/**
 * The boxes laid end to end in `buf` between `from` and `to` (a file's top level, or a box's payload):
 * type, start and end offsets. Stops at the first box that does not fit, so a truncated or hostile
 * size never reads past `to`.
 */
export function* childBoxes(buf: Buffer, from: number, to: number): Generator<[string, number, number]> {
  let o = from;
  while (o + 8 <= to) {
    const size = buf.readUInt32BE(o);
    if (size < 8 || o + size > to) return;
    yield [buf.toString('latin1', o + 4, o + 8), o, o + size];
    o += size;
  }
}
