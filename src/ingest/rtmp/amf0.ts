/**
 * AMF0 (Adobe "Action Message Format -- AMF 0", 2007), the encoding of RTMP commands and of FLV
 * script data. A pure codec: values in, bytes out and back. Decoding is bounded: nesting depth,
 * and every length is checked against the bytes actually present before anything is allocated,
 * so hostile input costs at most its own size.
 */

/** Markers (AMF0 spec §2.1). */
const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const REFERENCE = 0x07;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;
const UNSUPPORTED = 0x0d;
const XML_DOCUMENT = 0x0f;
const TYPED_OBJECT = 0x10;

/** Objects nested deeper than this are refused: real commands and metadata nest two or three levels. */
export const AMF_MAX_DEPTH = 32;
/** A UTF-8 string of up to this many bytes fits the short string form (u16 length). */
const SHORT_STRING_MAX = 0xffff;

export class AmfError extends Error {}

/** An ECMA array (marker 0x08): an associative array, which onMetaData uses instead of an object. */
export class EcmaArray {
  constructor(readonly props: AmfObject) {}
}

export type AmfValue = number | boolean | string | null | undefined | Date | AmfValue[] | EcmaArray | AmfObject;
export interface AmfObject {
  [key: string]: AmfValue;
}

// ---- decoding ------------------------------------------------------------------------------------

class Reader {
  constructor(
    private readonly buf: Buffer,
    public off: number,
  ) {}

  get left(): number {
    return this.buf.length - this.off;
  }

  need(n: number, what: string): void {
    if (n > this.left) throw new AmfError(`truncated AMF0 ${what}: needs ${n} bytes, ${this.left} left`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++];
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  f64(what: string): number {
    this.need(8, what);
    const v = this.buf.readDoubleBE(this.off);
    this.off += 8;
    return v;
  }

  utf8(len: number, what: string): string {
    this.need(len, what);
    const s = this.buf.toString('utf8', this.off, this.off + len);
    this.off += len;
    return s;
  }
}

/** Sets a property without ever touching the prototype chain (a key may be "__proto__"). */
function setProp(obj: AmfObject, key: string, value: AmfValue): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Object properties up to the empty-key + object-end marker (§2.5). */
function readProps(r: Reader, depth: number): AmfObject {
  const obj: AmfObject = {};
  for (;;) {
    const key = r.utf8(r.u16('property name length'), 'property name');
    if (key === '') {
      const m = r.u8('object end');
      if (m !== OBJECT_END) throw new AmfError(`expected AMF0 object end, got marker ${m}`);
      return obj;
    }
    setProp(obj, key, readValue(r, depth + 1));
  }
}

function readValue(r: Reader, depth: number): AmfValue {
  if (depth > AMF_MAX_DEPTH) throw new AmfError(`AMF0 nesting deeper than ${AMF_MAX_DEPTH}`);
  const marker = r.u8('marker');
  switch (marker) {
    case NUMBER:
      return r.f64('number');
    case BOOLEAN:
      return r.u8('boolean') !== 0;
    case STRING:
      return r.utf8(r.u16('string length'), 'string');
    case LONG_STRING:
    case XML_DOCUMENT:
      return r.utf8(r.u32('long string length'), 'long string');
    case OBJECT:
      return readProps(r, depth);
    case TYPED_OBJECT:
      // The class name has no JavaScript meaning here; the properties are what matter.
      r.utf8(r.u16('class name length'), 'class name');
      return readProps(r, depth);
    case ECMA_ARRAY:
      // The count is only a hint (§2.10); the end marker is what ends it.
      r.u32('ECMA array count');
      return new EcmaArray(readProps(r, depth));
    case STRICT_ARRAY: {
      const n = r.u32('strict array count');
      // Each element takes at least one byte: a count beyond what is left is a lie, refuse before allocating.
      r.need(n, 'strict array');
      const out: AmfValue[] = [];
      for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
      return out;
    }
    case DATE: {
      const ms = r.f64('date');
      r.u16('date time zone'); // §2.13: reserved, should be 0
      return new Date(ms);
    }
    case NULL:
      return null;
    case UNDEFINED:
    case UNSUPPORTED:
      return undefined;
    case REFERENCE:
      throw new AmfError('AMF0 references are not supported');
    default:
      throw new AmfError(`unknown AMF0 marker ${marker}`);
  }
}

/** One value at `offset`; returns it and the offset just past it. Throws AmfError on bad input. */
export function decodeAmf0(buf: Buffer, offset = 0): { value: AmfValue; offset: number } {
  const r = new Reader(buf, offset);
  const value = readValue(r, 0);
  return { value, offset: r.off };
}

/** Every value in `buf`, as in a command message (name, transaction id, command object, args…). */
export function decodeAmf0All(buf: Buffer): AmfValue[] {
  const r = new Reader(buf, 0);
  const out: AmfValue[] = [];
  while (r.left > 0) out.push(readValue(r, 0));
  return out;
}

// ---- encoding ------------------------------------------------------------------------------------

class Writer {
  private parts: Buffer[] = [];

  byte(b: number): void {
    this.parts.push(Buffer.from([b]));
  }

  u16(v: number): void {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
  }

  u32(v: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
  }

  f64(v: number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(v);
    this.parts.push(b);
  }

  bytes(b: Buffer): void {
    this.parts.push(b);
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function writeKey(w: Writer, key: string): void {
  const b = Buffer.from(key, 'utf8');
  if (b.length > SHORT_STRING_MAX) throw new AmfError(`AMF0 property name of ${b.length} bytes is too long`);
  w.u16(b.length);
  w.bytes(b);
}

function writeProps(w: Writer, obj: AmfObject, depth: number): void {
  for (const [k, v] of Object.entries(obj)) {
    writeKey(w, k);
    writeValue(w, v, depth + 1);
  }
  w.u16(0);
  w.byte(OBJECT_END);
}

function writeValue(w: Writer, v: AmfValue, depth: number): void {
  if (depth > AMF_MAX_DEPTH) throw new AmfError(`AMF0 nesting deeper than ${AMF_MAX_DEPTH}`);
  if (v === null) return w.byte(NULL);
  if (v === undefined) return w.byte(UNDEFINED);
  if (typeof v === 'number') {
    w.byte(NUMBER);
    return w.f64(v);
  }
  if (typeof v === 'boolean') {
    w.byte(BOOLEAN);
    return w.byte(v ? 1 : 0);
  }
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    if (b.length > SHORT_STRING_MAX) {
      w.byte(LONG_STRING);
      w.u32(b.length);
    } else {
      w.byte(STRING);
      w.u16(b.length);
    }
    return w.bytes(b);
  }
  if (v instanceof Date) {
    w.byte(DATE);
    w.f64(v.getTime());
    return w.u16(0);
  }
  if (Array.isArray(v)) {
    w.byte(STRICT_ARRAY);
    w.u32(v.length);
    for (const x of v) writeValue(w, x, depth + 1);
    return;
  }
  if (v instanceof EcmaArray) {
    w.byte(ECMA_ARRAY);
    w.u32(Object.keys(v.props).length);
    return writeProps(w, v.props, depth);
  }
  w.byte(OBJECT);
  writeProps(w, v, depth);
}

/** The values one after another, as a command or data message body. */
export function encodeAmf0(...values: AmfValue[]): Buffer {
  const w = new Writer();
  for (const v of values) writeValue(w, v, 0);
  return w.done();
}
