import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FlvDemuxer, FlvError, MAX_TAG_BYTES } from '../../../src/media/flv/demuxer.js';
import { flvHeader, flvTags } from '../../../src/media/flv/muxer.js';
import type { MediaPacket } from '../../../src/media/packet.js';

const video = (dts: number, key: boolean, header = false, cts = 0, bytes = 20): MediaPacket => {
  const data = Buffer.alloc(bytes, 0xab);
  data[0] = (key ? 0x10 : 0x20) | 7;
  data[1] = header ? 0 : 1;
  data.writeIntBE(cts, 2, 3);
  return { kind: 'video', dts, cts: header ? 0 : cts, keyframe: key, header, codec: 7, data };
};
const audio = (dts: number, header = false): MediaPacket => {
  const data = Buffer.from([0xaf, header ? 0 : 1, 0x12, 0x10, 0x56]);
  return { kind: 'audio', dts, cts: 0, keyframe: false, header, codec: 10, data };
};
const script = (): MediaPacket => ({ kind: 'script', dts: 0, cts: 0, keyframe: false, header: false, codec: 0, data: Buffer.from([2, 0, 10, ...Buffer.from('onMetaData'), 5]) });

const stream = (pkts: MediaPacket[], a = true, v = true) => Buffer.concat([flvHeader(a, v), flvTags(pkts)]);

describe('FLV muxer and demuxer on bytes alone', () => {
  const pkts = [script(), video(0, true, true), audio(0, true), video(0, true, false, 80), audio(23), video(40, false, false, -40), video(0x1234567, false)];

  test('round trip: every field survives, including negative composition time and the extended timestamp byte', () => {
    const out = new FlvDemuxer().push(stream(pkts));
    assert.equal(out.length, pkts.length);
    out.forEach((p, i) => {
      assert.equal(p.kind, pkts[i].kind);
      assert.equal(p.dts, pkts[i].dts, `dts of #${i}`);
      assert.equal(p.cts, pkts[i].cts, `cts of #${i}`);
      assert.equal(p.keyframe, pkts[i].keyframe);
      assert.equal(p.header, pkts[i].header);
      assert.deepEqual(p.data, pkts[i].data);
    });
  });

  test('header flags reflect the tracks; PreviousTagSize is the tag size', () => {
    assert.equal(flvHeader(true, false)[4], 4);
    assert.equal(flvHeader(false, true)[4], 1);
    const d = new FlvDemuxer();
    d.push(stream([], false, true));
    assert.deepEqual(d.header, { hasAudio: false, hasVideo: true });
    const tags = flvTags([audio(5)]);
    assert.equal(tags.readUInt32BE(tags.length - 4), 11 + 5);
  });

  test('any chunking gives the same packets (byte by byte, odd sizes)', () => {
    const bytes = stream(pkts);
    for (const step of [1, 3, 7, 13, 64]) {
      const d = new FlvDemuxer();
      const out: MediaPacket[] = [];
      for (let i = 0; i < bytes.length; i += step) out.push(...d.push(bytes.subarray(i, i + step)));
      assert.equal(out.length, pkts.length, `chunks of ${step}`);
      assert.deepEqual(out.map((p) => p.dts), pkts.map((p) => p.dts));
    }
  });

  test('a truncated stream yields the complete tags and waits for the rest', () => {
    const bytes = stream(pkts);
    const d = new FlvDemuxer();
    const first = d.push(bytes.subarray(0, bytes.length - 10));
    assert.equal(first.length, pkts.length - 1);
    const rest = d.push(bytes.subarray(bytes.length - 10));
    assert.equal(rest.length, 1);
  });

  test('malformed input is an FlvError, never anything else', () => {
    assert.throws(() => new FlvDemuxer().push(Buffer.from('GET / HTTP/1.1\r\n\r\n')), FlvError);
    const badSize = Buffer.from(flvHeader(true, true));
    badSize.writeUInt32BE(2, 5);
    assert.throws(() => new FlvDemuxer().push(badSize), FlvError);
    const badType = Buffer.concat([flvHeader(true, true), Buffer.from([7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 12])]);
    assert.throws(() => new FlvDemuxer().push(badType), /unknown FLV tag type 7/);
    const huge = Buffer.concat([flvHeader(true, true), Buffer.from([9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0])]);
    assert.ok(0xffffff > MAX_TAG_BYTES);
    assert.throws(() => new FlvDemuxer().push(huge), /over the/);
    const encrypted = Buffer.concat([flvHeader(true, true), Buffer.from([0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xaf, 0, 0, 0, 12])]);
    assert.throws(() => new FlvDemuxer().push(encrypted), /encrypted/);
  });

  test('bounded fuzz: random and bit-flipped streams throw FlvError or parse, nothing else', () => {
    const good = stream(pkts);
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    let tried = 0;
    let rejected = 0;
    const deadline = Date.now() + 5_000;
    for (let i = 0; i < 3_000 && Date.now() < deadline; i++) {
      let input: Buffer;
      if (i % 3 === 0) {
        input = Buffer.from(good);
        for (let f = 0; f < 1 + (i % 8); f++) input[Math.floor(rand() * input.length)] ^= 1 << Math.floor(rand() * 8);
      } else if (i % 3 === 1) {
        input = Buffer.concat([flvHeader(true, true), Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)))]);
      } else {
        input = good.subarray(0, Math.floor(rand() * good.length));
      }
      tried++;
      try {
        const d = new FlvDemuxer();
        for (let o = 0; o < input.length; o += 17) d.push(input.subarray(o, o + 17));
      } catch (err) {
        assert.ok(err instanceof FlvError, `input #${i} threw ${String(err)}`);
        rejected++;
      }
    }
    assert.ok(tried >= 1_000, `only ${tried} inputs in the time bound`);
    assert.ok(rejected > 0);
  });
});
