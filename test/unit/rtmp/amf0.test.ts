import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AMF_MAX_DEPTH, AmfError, decodeAmf0, decodeAmf0All, EcmaArray, encodeAmf0, type AmfValue } from '../../../src/ingest/rtmp/amf0.js';

const roundTrip = (v: AmfValue): AmfValue => {
  const bytes = encodeAmf0(v);
  const { value, offset } = decodeAmf0(bytes);
  assert.equal(offset, bytes.length, 'the decoder consumed exactly what the encoder wrote');
  return value;
};

describe('AMF0 codec', () => {
  test('scalars round trip, with the wire bytes of the spec', () => {
    for (const n of [0, 1, -1, 3.5, 2 ** 53, -0.25, Number.MAX_VALUE, Infinity]) assert.equal(roundTrip(n), n);
    assert.ok(Number.isNaN(roundTrip(NaN)));
    assert.equal(roundTrip(true), true);
    assert.equal(roundTrip(false), false);
    assert.equal(roundTrip(null), null);
    assert.equal(roundTrip(undefined), undefined);
    assert.deepEqual(encodeAmf0(1), Buffer.from([0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]));
    assert.deepEqual(encodeAmf0('ab'), Buffer.from([2, 0, 2, 0x61, 0x62]));
    assert.deepEqual(encodeAmf0(true, null, undefined), Buffer.from([1, 1, 5, 6]));
  });

  test('strings: empty, UTF-8, and long strings past 65535 bytes switch to the 32-bit form', () => {
    for (const s of ['', 'connect', 'Grüße, 直播 🎥']) assert.equal(roundTrip(s), s);
    const long = 'x'.repeat(70_000);
    const bytes = encodeAmf0(long);
    assert.equal(bytes[0], 0x0c, 'long string marker');
    assert.equal(bytes.readUInt32BE(1), 70_000);
    assert.equal(roundTrip(long), long);
    const edge = 'y'.repeat(0xffff);
    assert.equal(encodeAmf0(edge)[0], 0x02, 'exactly 65535 bytes still fits a short string');
    assert.equal(roundTrip(edge), edge);
  });

  test('objects, ECMA arrays, strict arrays and dates round trip, nested', () => {
    const connect = { app: 'live', flashVer: 'FMLE/3.0', tcUrl: 'rtmp://127.0.0.1:1935/live', fpad: false, capabilities: 15, audioCodecs: 4071, objectEncoding: 0 };
    assert.deepEqual(roundTrip(connect), connect);
    const meta = new EcmaArray({ duration: 0, width: 1280, height: 720, videocodecid: 7, encoder: 'Lavf', stereo: true });
    const back = roundTrip(meta);
    assert.ok(back instanceof EcmaArray);
    assert.deepEqual(back.props, meta.props);
    const nested = { a: [1, 'two', null, { b: [true, new EcmaArray({ c: undefined })] }], d: new Date(Date.UTC(2026, 10, 25, 12, 0, 0, 5)) };
    assert.deepEqual(roundTrip(nested), nested);
    assert.deepEqual(roundTrip([]), []);
    assert.deepEqual(roundTrip({}), {});
    const when = new Date(1_700_000_000_123);
    const d = roundTrip(when);
    assert.ok(d instanceof Date && d.getTime() === when.getTime());
  });

  test('a command message decodes as its sequence of values', () => {
    const msg = encodeAmf0('publish', 5, null, 'a?secret=x', 'live');
    assert.deepEqual(decodeAmf0All(msg), ['publish', 5, null, 'a?secret=x', 'live']);
  });

  test('a property named __proto__ is data, not the prototype', () => {
    // An object { "__proto__": { polluted: true } } written by hand: marker, key, value, end.
    const key = Buffer.from('__proto__');
    const bytes = Buffer.concat([Buffer.from([3, 0, key.length]), key, encodeAmf0({ polluted: true }), Buffer.from([0, 0, 9])]);
    const v = decodeAmf0(bytes).value as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('every truncation of valid input is a typed error, never a crash or a wrong value', () => {
    const full = encodeAmf0('onMetaData', new EcmaArray({ width: 320, encoder: 'x'.repeat(300), list: [1, 2, 3], when: new Date(0) }), { nested: { deeper: 'y' } });
    for (let n = 0; n < full.length; n++) {
      const cut = full.subarray(0, n);
      let values: AmfValue[];
      try {
        values = decodeAmf0All(cut);
      } catch (err) {
        assert.ok(err instanceof AmfError, `cut at ${n}: ${(err as Error).message}`);
        continue;
      }
      // A cut at a value boundary is a valid, shorter sequence.
      assert.ok(values.length < 3, `cut at ${n} decoded all three values`);
    }
    assert.throws(() => decodeAmf0(Buffer.from([2, 0, 10, 0x61])), (e) => e instanceof AmfError && /truncated/.test(e.message));
  });

  test('lengths larger than the input are refused before allocating', () => {
    assert.throws(() => decodeAmf0(Buffer.from([0x0c, 0xff, 0xff, 0xff, 0xff, 0x61])), AmfError);
    assert.throws(() => decodeAmf0(Buffer.from([0x0a, 0x7f, 0xff, 0xff, 0xff, 5, 5])), AmfError);
  });

  test('unknown markers, references, and a missing object end are typed errors', () => {
    assert.throws(() => decodeAmf0(Buffer.from([0x11])), AmfError, 'AMF3 switch');
    assert.throws(() => decodeAmf0(Buffer.from([0x07, 0, 0])), AmfError, 'reference');
    assert.throws(() => decodeAmf0(Buffer.from([0x03, 0, 0, 0x05])), AmfError, 'empty key without end marker');
  });

  test('nesting is bounded both ways', () => {
    let deep: AmfValue = 1;
    for (let i = 0; i < AMF_MAX_DEPTH; i++) deep = { x: deep };
    assert.deepEqual(roundTrip(deep), deep, 'the bound itself is accepted');
    assert.throws(() => encodeAmf0({ x: deep }), AmfError);
    // 10,000 nested strict arrays in 50 KB: refused with a typed error, not a stack overflow.
    const bomb = Buffer.concat(Array.from({ length: 10_000 }, () => Buffer.from([0x0a, 0, 0, 0, 1])));
    assert.throws(() => decodeAmf0(bomb), (e) => e instanceof AmfError && /nesting/.test(e.message));
  });
});
