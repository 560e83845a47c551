import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { packetFromTag, TAG_VIDEO, VIDEO_AV1, VIDEO_AVC, VIDEO_HEVC } from '../../../src/media/packet.js';
import { videoFrame } from '../../../src/media/video.js';

/** An Enhanced-FLV video body: IsExHeader|FrameType|PacketType, FourCC, then `rest`. */
const ex = (frameType: number, packetType: number, fourcc: string, rest: number[] | Buffer): Buffer =>
  Buffer.concat([Buffer.from([0x80 | (frameType << 4) | packetType]), Buffer.from(fourcc, 'latin1'), Buffer.from(rest)]);

describe('Enhanced FLV video classification (packetFromTag and videoFrame)', () => {
  test('hvc1 sequence start is a header with the HEVC codec id; body is the hvcC without the prefix', () => {
    const p = packetFromTag(TAG_VIDEO, 0, ex(1, 0, 'hvc1', [1, 2, 3]))!;
    assert.equal(p.codec, VIDEO_HEVC);
    assert.equal(p.header, true);
    assert.equal(p.keyframe, false);
    assert.deepEqual(videoFrame(p), { codec: 'hevc', part: 'config', key: true, cts: 0, body: Buffer.from([1, 2, 3]) });
  });

  test('hvc1 CodedFrames carries a signed 24-bit composition time; CodedFramesX none', () => {
    const coded = packetFromTag(TAG_VIDEO, 40, ex(1, 1, 'hvc1', [0xff, 0xff, 0xd8, 0, 0, 0, 1, 9]))!;
    assert.equal(coded.keyframe, true);
    assert.equal(coded.header, false);
    assert.equal(coded.cts, -40);
    const f = videoFrame(coded)!;
    assert.equal(f.cts, -40);
    assert.equal(f.part, 'frame');
    assert.deepEqual(f.body, Buffer.from([0, 0, 0, 1, 9]));
    const x = packetFromTag(TAG_VIDEO, 80, ex(2, 3, 'hvc1', [0, 0, 0, 1, 7]))!;
    assert.equal(x.keyframe, false);
    assert.equal(x.cts, 0);
    assert.deepEqual(videoFrame(x), { codec: 'hevc', part: 'frame', key: false, cts: 0, body: Buffer.from([0, 0, 0, 1, 7]) });
  });

  test('av01 CodedFrames has no composition time: the OBUs start right after the FourCC', () => {
    const p = packetFromTag(TAG_VIDEO, 0, ex(1, 1, 'av01', [0x12, 0, 0x0a]))!;
    assert.equal(p.codec, VIDEO_AV1);
    assert.equal(p.cts, 0);
    assert.deepEqual(videoFrame(p)!.body, Buffer.from([0x12, 0, 0x0a]));
    assert.equal(videoFrame(p)!.codec, 'av1');
  });

  test('sequence end is neither a header nor a key frame, and reads as part "end"', () => {
    const p = packetFromTag(TAG_VIDEO, 0, ex(1, 2, 'av01', []))!;
    assert.equal(p.header, false);
    assert.equal(p.keyframe, false);
    assert.equal(videoFrame(p)!.part, 'end');
  });

  test('avc1 (enhanced form of H.264) maps to the AVC codec id', () => {
    const p = packetFromTag(TAG_VIDEO, 0, ex(1, 0, 'avc1', [1]))!;
    assert.equal(p.codec, VIDEO_AVC);
    assert.equal(videoFrame(p)!.codec, 'avc');
  });

  test('metadata packets travel as plain video packets that no remuxer reads', () => {
    const p = packetFromTag(TAG_VIDEO, 0, ex(1, 4, 'hvc1', [2, 0, 9]))!;
    assert.equal(p.header, false);
    assert.equal(p.keyframe, false);
    assert.equal(videoFrame(p), null);
  });

  test('hostile or unknown bodies are dropped, never thrown on', () => {
    assert.equal(packetFromTag(TAG_VIDEO, 0, ex(1, 0, 'vp09', [1])), null, 'unknown FourCC');
    assert.equal(packetFromTag(TAG_VIDEO, 0, ex(1, 0, 'xyz\u0000', [])), null);
    assert.equal(packetFromTag(TAG_VIDEO, 0, Buffer.from([0x90, 0x68, 0x76])), null, 'FourCC cut short');
    assert.equal(packetFromTag(TAG_VIDEO, 0, ex(1, 1, 'hvc1', [0xff])), null, 'composition time cut short');
    assert.equal(packetFromTag(TAG_VIDEO, 0, ex(1, 6, 'hvc1', [])), null, 'multitrack (v2) is not relayed half-understood');
    assert.equal(packetFromTag(TAG_VIDEO, 0, Buffer.from([0xd0, 1])), null, 'command frame');
    for (let n = 0; n < 12; n++) {
      for (const b0 of [0x80, 0x90, 0x91, 0x93, 0x9f, 0xa1]) {
        const body = Buffer.concat([Buffer.from([b0]), Buffer.from('hvc1av01', 'latin1')]).subarray(0, n);
        const p = packetFromTag(TAG_VIDEO, 0, body);
        if (p) videoFrame(p);
      }
    }
  });

  test('legacy AVC classification is unchanged', () => {
    const p = packetFromTag(TAG_VIDEO, 0, Buffer.from([0x17, 1, 0, 0, 40, 0, 0, 0, 1, 0x65]))!;
    assert.equal(p.codec, VIDEO_AVC);
    assert.equal(p.keyframe, true);
    assert.equal(p.cts, 40);
    assert.deepEqual(videoFrame(p), { codec: 'avc', part: 'frame', key: true, cts: 40, body: Buffer.from([0, 0, 0, 1, 0x65]) });
  });
});
