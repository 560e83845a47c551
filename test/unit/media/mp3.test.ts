import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseMp3Header, wholeLayer3Frame } from '../../../src/media/mp3.js';

/** The first bytes of an MP3 that ffmpeg (libmp3lame) encodes from a generated tone. */
function encode(rate: number, channels: number): Buffer {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${rate}`, '-t', '0.5', '-ac', String(channels), '-c:a', 'libmp3lame', '-write_xing', '0', '-id3v2_version', '0', '-f', 'mp3', 'pipe:1']);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
}

describe('MP3 frame header', () => {
  test('rate and channels of real frames, MPEG-1, 2 and 2.5', () => {
    for (const [rate, channels, version] of [[44100, 2, 1], [48000, 1, 1], [22050, 2, 2], [8000, 1, 2.5]] as const) {
      const mp3 = encode(rate, channels);
      const h = parseMp3Header(mp3);
      assert.ok(h);
      const { bitrate, frameBytes, ...rest } = h;
      assert.deepEqual(rest, { version, layer: 3, sampleRate: rate, channels, samplesPerFrame: version === 1 ? 1152 : 576 }, `${rate} Hz × ${channels}`);
      // The length the header gives lands on the next frame's sync word (libmp3lame writes CBR frames back to back).
      assert.ok(bitrate > 0 && frameBytes > 4);
      assert.ok(parseMp3Header(mp3.subarray(frameBytes)), `a frame of ${frameBytes} bytes at ${bitrate} kbit/s is followed by a header`);
      assert.ok(wholeLayer3Frame(mp3.subarray(0, frameBytes)));
    }
  });

  test('frame lengths of the standard\'s examples: 417/418 bytes at 128 kbit/s 44.1 kHz, 72 at 8 kbit/s 8 kHz (MPEG 2.5)', () => {
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0x90, 0x44]))?.frameBytes, 417);
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0x92, 0x44]))?.frameBytes, 418, 'padding');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xe3, 0x18, 0xc4]))?.frameBytes, 72, '576 samples / 8 × 8000 / 8000');
  });

  test('what MP4 takes: a whole Layer III frame of known length, nothing else', () => {
    const frame = Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x44]), Buffer.alloc(413)]);
    assert.ok(wholeLayer3Frame(frame));
    assert.equal(wholeLayer3Frame(frame.subarray(0, 416)), null, 'short frame');
    assert.equal(wholeLayer3Frame(frame.subarray(0, 3)), null, 'shorter than a header');
    assert.equal(wholeLayer3Frame(Buffer.concat([Buffer.from([0xff, 0xfb, 0x00, 0x44]), Buffer.alloc(413)])), null, 'free format');
    assert.equal(wholeLayer3Frame(Buffer.concat([Buffer.from([0xff, 0xfd, 0x90, 0x44]), Buffer.alloc(413)])), null, 'Layer II');
    assert.equal(wholeLayer3Frame(Buffer.concat([Buffer.from([0xfe, 0xfb, 0x90, 0x44]), Buffer.alloc(413)])), null, 'bad sync');
  });

  test('no header: too short, no sync, reserved version, layer or rate', () => {
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0x90])), null);
    assert.equal(parseMp3Header(Buffer.from([0x49, 0x44, 0x33, 0x04])), null, 'an ID3 tag');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xeb, 0x90, 0x44])), null, 'version 01');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xf9, 0x90, 0x44])), null, 'layer 00');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0x9c, 0x44])), null, 'rate index 11');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0xf0, 0x44])), null, 'bitrate index 1111');
  });
});
