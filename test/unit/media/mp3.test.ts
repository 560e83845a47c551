import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseMp3Header } from '../../../src/media/mp3.js';

/** The first bytes of an MP3 that ffmpeg (libmp3lame) encodes from a generated tone. */
function encode(rate: number, channels: number): Buffer {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=${rate}`, '-t', '0.5', '-ac', String(channels), '-c:a', 'libmp3lame', '-write_xing', '0', '-id3v2_version', '0', '-f', 'mp3', 'pipe:1']);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
}

describe('MP3 frame header', () => {
  test('rate and channels of real frames, MPEG-1, 2 and 2.5', () => {
    for (const [rate, channels, version] of [[44100, 2, 1], [48000, 1, 1], [22050, 2, 2], [8000, 1, 2.5]] as const) {
      const h = parseMp3Header(encode(rate, channels));
      assert.deepEqual(h, { version, layer: 3, sampleRate: rate, channels }, `${rate} Hz × ${channels}`);
    }
  });

  test('no header: too short, no sync, reserved version, layer or rate', () => {
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0x90])), null);
    assert.equal(parseMp3Header(Buffer.from([0x49, 0x44, 0x33, 0x04])), null, 'an ID3 tag');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xeb, 0x90, 0x44])), null, 'version 01');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xf9, 0x90, 0x44])), null, 'layer 00');
    assert.equal(parseMp3Header(Buffer.from([0xff, 0xfb, 0x9c, 0x44])), null, 'rate index 11');
  });
});
