import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_HVCC_NALUS, parseHvcc, parseHevcSps, HevcError } from '../../../src/media/hevc.js';
import { parseAv1c, readLeb128, Av1Error } from '../../../src/media/av1.js';
import { TsMuxer } from '../../../src/media/ts/muxer.js';
import { packetFromTag, TAG_VIDEO } from '../../../src/media/packet.js';

/**
 * The parameter sets libx265 wrote for a 320x240 Main stream (level 2, one sub-layer), assembled
 * into an hvcC by hand: what the parsers must read, and variations that lie.
 */
const VPS = Buffer.from('40010c01ffff01600000030090000003000003003c959009', 'hex');
const SPS = Buffer.from('42010101600000030090000003000003003ca00a080f16595912930bc05a020000030002000003003210', 'hex');
const PPS = Buffer.from('4401c073c189', 'hex');

function hvcc(arrays: [number, Buffer[]][], count = arrays.length): Buffer {
  const head = Buffer.alloc(23);
  head[0] = 1;
  head[21] = 0xf3; // lengthSizeMinusOne 3
  head[22] = count;
  const parts: Buffer[] = [head];
  for (const [type, nalus] of arrays) {
    const a = Buffer.alloc(3);
    a[0] = 0x80 | type;
    a.writeUInt16BE(nalus.length, 1);
    parts.push(a);
    for (const n of nalus) {
      const l = Buffer.alloc(2);
      l.writeUInt16BE(n.length);
      parts.push(l, n);
    }
  }
  return Buffer.concat(parts);
}

describe('hvcC and the H.265 SPS', () => {
  test('parameter sets, NAL length size, profile, level and size', () => {
    const c = parseHvcc(hvcc([[32, [VPS]], [33, [SPS]], [34, [PPS]]]));
    assert.equal(c.nalLengthSize, 4);
    assert.deepEqual([c.vps.length, c.sps.length, c.pps.length], [1, 1, 1]);
    assert.equal(c.profileName, 'Main');
    assert.equal(c.level, '2');
    assert.equal(c.width, 320);
    assert.equal(c.height, 240);
  });

  test('truncated, lying and oversized records throw HevcError, never anything else', () => {
    const good = hvcc([[32, [VPS]], [33, [SPS]], [34, [PPS]]]);
    for (let n = 0; n < good.length; n++) {
      try {
        parseHvcc(good.subarray(0, n));
      } catch (e) {
        assert.ok(e instanceof HevcError, `cut at ${n}: ${e}`);
      }
    }
    assert.throws(() => parseHvcc(hvcc([[33, [SPS]]], 255)), HevcError, 'more arrays than present');
    const huge = hvcc([[33, [SPS]]]);
    huge.writeUInt16BE(0xffff, 24);
    assert.throws(() => parseHvcc(huge), HevcError, '65535 NAL units claimed');
    const many = hvcc([[39, Array.from({ length: MAX_HVCC_NALUS + 1 }, () => Buffer.alloc(0))]]);
    assert.throws(() => parseHvcc(many), /more than/);
  });

  test('an SPS cut short loses only the description, not the parameter sets', () => {
    const c = parseHvcc(hvcc([[32, [VPS]], [33, [SPS.subarray(0, 8)]], [34, [PPS]]]));
    assert.equal(c.width, 0);
    assert.equal(c.sps.length, 1);
    assert.throws(() => parseHevcSps(Buffer.from([0x40, 1, 0, 0])));
  });
});

describe('av1C', () => {
  // As ffmpeg's MP4 muxer writes it for libaom-av1 320x240 Main, level index 0.
  const AV1C = Buffer.from('81000c000a0b000000043cffbcdaf900400', 'hex');

  test('profile, level and size from the sequence header OBU', () => {
    assert.deepEqual(parseAv1c(AV1C.subarray(0, 17)), { profileName: 'Main', level: '2.0', width: 320, height: 240 });
  });

  test('hostile records throw Av1Error or give no size; leb128 is bounded', () => {
    for (let n = 0; n < 17; n++) {
      try {
        parseAv1c(AV1C.subarray(0, n));
      } catch (e) {
        assert.ok(e instanceof Av1Error, `cut at ${n}: ${e}`);
      }
    }
    const lying = Buffer.from(AV1C.subarray(0, 17));
    lying[5] = 0x7f; // the OBU claims 127 bytes
    assert.equal(parseAv1c(lying).width, 0);
    assert.equal(readLeb128(Buffer.alloc(12, 0x80), 0), null);
    assert.deepEqual(readLeb128(Buffer.from([0xe5, 0x8e, 0x26]), 0), { value: 624485, bytes: 3 });
  });
});

describe('HEVC into MPEG-TS', () => {
  test('stream type 0x24, AUD then VPS/SPS/PPS before an IRAP picture, Annex-B start codes', () => {
    const mux = new TsMuxer({ video: true, videoCodec: 'hevc', audio: null });
    const tables = mux.tables();
    // The PMT's first elementary stream entry: stream_type at byte 5 + 12 of its TS packet.
    assert.equal(tables[188 + 5 + 12], 0x24);
    const ex = (b0: number, body: Buffer) => Buffer.concat([Buffer.from([b0, 0x68, 0x76, 0x63, 0x31]), body]);
    assert.equal(mux.mux(packetFromTag(TAG_VIDEO, 0, ex(0x90, hvcc([[32, [VPS]], [33, [SPS]], [34, [PPS]]])))!).length, 0);
    const idr = Buffer.from([0, 0, 0, 3, 0x26, 0x01, 0xaf]); // IDR_W_RADL (19)
    const ts = mux.mux(packetFromTag(TAG_VIDEO, 0, ex(0x93, idr))!);
    const payload = ts.subarray(4 + 1 + ts[4]); // skip the adaptation field
    const es = payload.subarray(9 + payload[8]);
    const annexB = Buffer.concat([Buffer.from([0, 0, 0, 1, 0x46, 0x01, 0x50]), ...[VPS, SPS, PPS, idr.subarray(4)].flatMap((n) => [Buffer.from([0, 0, 0, 1]), n])]);
    assert.deepEqual(es.subarray(0, annexB.length), annexB);
    assert.equal(mux.dropped, 0);
  });

  test('a frame before any hvcC, or with a length that overruns, is dropped and counted', () => {
    const mux = new TsMuxer({ video: true, videoCodec: 'hevc', audio: null });
    const frame = Buffer.from([0x93, 0x68, 0x76, 0x63, 0x31, 0, 0, 0, 9, 0x26]);
    assert.equal(mux.mux(packetFromTag(TAG_VIDEO, 0, frame)!).length, 0);
    assert.equal(mux.dropped, 1);
  });
});
