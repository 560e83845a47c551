import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { FlvDemuxer } from '../../../src/media/flv/demuxer.js';
import { parseAvcSequenceHeader, parseSps, unescapeRbsp, AvcError } from '../../../src/media/avc.js';
import { adtsHeader, parseAudioSpecificConfig, FLV_AAC_PREFIX_BYTES } from '../../../src/media/aac.js';
import type { MediaPacket } from '../../../src/media/packet.js';

/** A short FLV made by ffmpeg from lavfi sources, demuxed by our own demuxer. */
function encode(video: string[], audio: string[]): MediaPacket[] {
  const args = ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=10', '-f', 'lavfi', '-i', 'sine=sample_rate=48000',
    '-t', '0.5', ...video, ...audio, '-f', 'flv', '-'];
  const r = spawnSync('ffmpeg', args, { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return new FlvDemuxer().push(r.stdout);
}

describe('H.264 parameter sets from real encodes', () => {
  const cases: { size: string; profile: string; expect: { profileName: string; width: number; height: number } }[] = [
    { size: '640x360', profile: 'high', expect: { profileName: 'High', width: 640, height: 360 } },
    { size: '1280x720', profile: 'main', expect: { profileName: 'Main', width: 1280, height: 720 } },
    // 1080 is 68 macroblocks = 1088 lines, cropped by 8: the crop path must be right.
    { size: '1920x1080', profile: 'high', expect: { profileName: 'High', width: 1920, height: 1080 } },
    { size: '426x240', profile: 'baseline', expect: { profileName: 'Constrained Baseline', width: 426, height: 240 } },
  ];
  for (const c of cases) {
    test(`${c.size} ${c.profile}`, () => {
      const pkts = encode(['-vf', `scale=${c.size}`, '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', c.profile, '-pix_fmt', 'yuv420p'], ['-an']);
      const seq = pkts.find((p) => p.kind === 'video' && p.header);
      assert.ok(seq, 'an AVC sequence header');
      const cfg = parseAvcSequenceHeader(seq.data);
      assert.deepEqual({ profileName: cfg.profileName, width: cfg.width, height: cfg.height }, c.expect);
      assert.match(cfg.level, /^\d(\.\d)?$/);
      assert.equal(cfg.nalLengthSize, 4);
      assert.equal(cfg.sps.length, 1);
      assert.equal(cfg.pps.length, 1);
      assert.equal(cfg.sps[0][0] & 0x1f, 7);
      assert.equal(cfg.pps[0][0] & 0x1f, 8);
    });
  }

  test('emulation-prevention bytes are removed; truncated SPS is an error, not a crash', () => {
    assert.deepEqual(unescapeRbsp(Buffer.from([0, 0, 3, 1, 0, 0, 3, 0])), Buffer.from([0, 0, 1, 0, 0, 0]));
    assert.throws(() => parseSps(Buffer.from([0x67, 100, 0, 31])), AvcError);
    assert.throws(() => parseAvcSequenceHeader(Buffer.from([0x17, 0, 0, 0, 0, 1, 100])), AvcError);
  });
});

describe('AAC AudioSpecificConfig and ADTS', () => {
  test('48 kHz stereo LC from a real encode, and ADTS frames ffprobe reads without errors', () => {
    const pkts = encode(['-vn'], ['-ac', '2', '-c:a', 'aac', '-b:a', '96k']);
    const seq = pkts.find((p) => p.kind === 'audio' && p.header);
    assert.ok(seq);
    const cfg = parseAudioSpecificConfig(seq.data.subarray(FLV_AAC_PREFIX_BYTES));
    assert.deepEqual({ objectType: cfg.objectType, profileName: cfg.profileName, sampleRate: cfg.sampleRate, channels: cfg.channels },
      { objectType: 2, profileName: 'LC', sampleRate: 48000, channels: 2 });
    const frames = pkts.filter((p) => p.kind === 'audio' && !p.header).map((p) => p.data.subarray(FLV_AAC_PREFIX_BYTES));
    assert.ok(frames.length > 10);
    const adts = Buffer.concat(frames.flatMap((f) => [adtsHeader(cfg, f.length), f]));
    const r = spawnSync('ffprobe', ['-v', 'error', '-f', 'aac', '-show_entries', 'stream=codec_name,sample_rate,channels', '-of', 'csv=p=0', '-'], { input: adts });
    assert.equal(r.stderr.toString(), '');
    assert.equal(r.stdout.toString().trim(), 'aac,48000,2');
  });

  test('escape values and reserved indexes', () => {
    // AOT 2, explicit 24-bit rate 44100 (index 15), 1 channel.
    const explicit = Buffer.from([0x17, 0x80, 0x56, 0x22, 0x08]);
    const c = parseAudioSpecificConfig(explicit);
    assert.equal(c.sampleRate, 44100);
    assert.equal(c.channels, 1);
    assert.throws(() => parseAudioSpecificConfig(Buffer.from([0x16, 0x88])), /reserved sampling frequency index 13/);
    assert.throws(() => parseAudioSpecificConfig(Buffer.from([0x12])));
  });
});
