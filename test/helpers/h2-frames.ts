/**
 * Raw HTTP/2 frames as a test writes them by hand (RFC 9113 §4.1), for the tests that send what no
 * client library would: floods, broken frames, fuzzed connections.
 */

/** The client connection preface (§3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** One frame: 24-bit length, type, flags, stream id (any 32 bits, so fuzzers can set the reserved bit), payload. */
export function frame(type: number, flags: number, id: number, payload: Buffer | number[] = []): Buffer {
  const p = Buffer.from(payload);
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id >>> 0, 5);
  return Buffer.concat([h, p]);
}

/**
 * A GET as an HPACK block written by hand: indexed :method GET and :scheme https, literal :path
 * and :authority (`x`), then `extra` fields as literals without indexing (values under 128 octets).
 */
export function getBlock(path: string, extra: [string, string][] = []): Buffer {
  const lit = (name: string, value: string) => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  return Buffer.concat([Buffer.from([0x82, 0x87, 0x04, path.length]), Buffer.from(path), Buffer.from([0x01, 1]), Buffer.from('x'), ...extra.map(([n, v]) => lit(n, v))]);
}

/** A SETTINGS frame with these (identifier, value) pairs. */
export function settings(pairs: [number, number][]): Buffer {
  const b = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([k, v], i) => {
    b.writeUInt16BE(k, 6 * i);
    b.writeUInt32BE(v, 6 * i + 2);
  });
  return frame(4, 0, 0, b);
}
