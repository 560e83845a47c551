import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlvDemuxer } from '../../../src/media/flv/demuxer.js';
import { initSegment, mediaSegment, Mp4Remuxer } from '../../../src/media/mp4/index.js';
import { AUDIO_MP3, type MediaPacket } from '../../../src/media/packet.js';
import { videoFrame } from '../../../src/media/video.js';
import { mp4Encoder } from '../../../src/record/mp4-binding.js';

/** Two seconds of H.264 and MP3 (libmp3lame) as FLV, as an old encoder publishes them, demuxed by our demuxer. */
function flvPackets(rate: number, channels: number, video = true): MediaPacket[] {
  const v = video ? ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25'] : [];
  const args = ['-hide_banner', '-loglevel', 'error', ...v, '-f', 'lavfi', '-i', `sine=sample_rate=${rate}`, '-t', '2',
    ...(video ? ['-c:v', 'libx264', '-preset', 'veryfast', '-g', '25', '-pix_fmt', 'yuv420p'] : []), '-ac', String(channels), '-c:a', 'libmp3lame', '-f', 'flv', '-'];
  const r = spawnSync('ffmpeg', args, { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return new FlvDemuxer().push(r.stdout).filter((p) => p.kind !== 'script');
}

const firstMp3 = (pkts: MediaPacket[]): Buffer => pkts.find((p) => p.kind === 'audio' && p.codec === AUDIO_MP3)!.data.subarray(1);

/** The init segment and one fragment per GOP (per second without video), the remuxer given the first MP3 frame. */
function remux(pkts: MediaPacket[], video: boolean): Buffer {
  const rx = new Mp4Remuxer(video, false);
  assert.equal(rx.setMp3(firstMp3(pkts)), true);
  const out: Buffer[] = [];
  let seq = 1;
  let cutAt = 0;
  for (const p of pkts) {
    const ms = rx.timeOf(p);
    const key = videoFrame(p)?.key === true && videoFrame(p)?.part === 'frame';
    if (rx.holding && (video ? key : ms - cutAt >= 1000)) {
      out.push(mediaSegment(seq++, rx.take(ms)));
      cutAt = ms;
    }
    rx.push(p, ms);
  }
  out.push(mediaSegment(seq, rx.take()));
  return Buffer.concat([initSegment(rx.tracks()!), ...out]);
}

interface Probe { streams: { codec_name: string; sample_rate?: string; channels?: number; duration?: string }[] }

function ffprobe(file: Buffer): { stderr: string; info: Probe; decodeErrors: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mp4-mp3-'));
  try {
    const path = join(dir, 'x.mp4');
    writeFileSync(path, file);
    const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,sample_rate,channels,duration', '-of', 'json', '-i', path]);
    const d = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', path, '-f', 'null', '-']);
    return { stderr: r.stderr.toString(), info: JSON.parse(r.stdout.toString()) as Probe, decodeErrors: d.stderr.toString() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The esds's objectTypeIndication, streamType, whether a DecoderSpecificInfo follows, and the mp4a entry's channels and rate. */
function audioEntry(init: Buffer): { objectType: number; streamType: number; dcdBytes: number; channels: number; sampleSize: number; rate: number } {
  const m = init.indexOf('mp4a', 0, 'latin1');
  const e = init.indexOf('esds', m, 'latin1');
  assert.ok(m > 0 && e > m, 'an mp4a entry with its esds');
  // esds: version/flags, ES_Descriptor (0x03, 1-byte size, ES_ID, flags), DecoderConfigDescriptor (0x04, size, body).
  assert.equal(init[e + 8], 0x03);
  assert.equal(init[e + 13], 0x04);
  return { objectType: init[e + 15], streamType: init[e + 16], dcdBytes: init[e + 14], channels: init.readUInt16BE(m + 20), sampleSize: init.readUInt16BE(m + 22), rate: init.readUInt32BE(m + 28) / 0x10000 };
}

describe('MP3 in fMP4 (recordings)', () => {
  for (const [rate, channels, objectType] of [[44100, 2, 0x6b], [22050, 1, 0x69]] as const) {
    test(`H.264 + MP3 ${rate} Hz × ${channels}: mp4a/esds 0x${objectType.toString(16)} without DecoderSpecificInfo; ffprobe reads h264 + mp3, 2 s each, decodes clean`, () => {
      const file = remux(flvPackets(rate, channels), true);
      const a = audioEntry(file);
      assert.equal(a.objectType, objectType, rate > 24000 ? 'MPEG-1 audio (11172-3)' : 'MPEG-2 audio (13818-3)');
      assert.equal(a.streamType, (0x05 << 2) | 1, 'AudioStream');
      assert.equal(a.dcdBytes, 13, 'the DecoderConfigDescriptor\'s fixed fields only: no DecoderSpecificInfo');
      assert.deepEqual([a.channels, a.sampleSize, a.rate], [channels, 16, rate]);
      assert.ok(!file.subarray(0, 32).toString('latin1').includes('cmfc'), 'no CMAF brand: CMAF has no MP3 profile');
      const { stderr, info, decodeErrors } = ffprobe(file);
      assert.equal(stderr, '');
      assert.equal(decodeErrors, '');
      const [v, au] = info.streams;
      assert.equal(v.codec_name, 'h264');
      assert.equal(au.codec_name, 'mp3');
      assert.equal(au.sample_rate, String(rate));
      assert.equal(au.channels, channels);
      assert.ok(Math.abs(Number(v.duration) - 2) < 0.05, `video duration ${v.duration}`);
      assert.ok(Math.abs(Number(au.duration) - 2) < 0.15, `audio duration ${au.duration}`);
    });
  }

  test('MP3 alone: one audio track, timescale the sample rate, plays its 2 s', () => {
    const file = remux(flvPackets(48000, 2, false), false);
    const mdhd = file.indexOf('mdhd', 0, 'latin1');
    assert.equal(file.readUInt32BE(mdhd + 16), 48000, 'mdhd timescale');
    const { stderr, info, decodeErrors } = ffprobe(file);
    assert.equal(stderr + decodeErrors, '');
    assert.deepEqual(info.streams.map((s) => s.codec_name), ['mp3']);
    assert.ok(Math.abs(Number(info.streams[0].duration) - 2) < 0.15, `audio duration ${info.streams[0].duration}`);
  });

  test('opt-in: a remuxer never handed an MP3 frame (HLS fMP4) ignores MP3 as before', () => {
    const pkts = flvPackets(44100, 2);
    const rx = new Mp4Remuxer(true, true);
    for (const p of pkts) assert.equal(rx.push(p, rx.timeOf(p)) && p.kind === 'audio', false, 'no MP3 frame becomes a sample');
    assert.equal(rx.tracks(), null, 'still waiting for AAC');
  });

  test('a broken first frame: the recording keeps its video (one track), or is not made without video; broken later frames are left out', () => {
    const pkts = flvPackets(44100, 2);
    const good = firstMp3(pkts);
    const video = pkts.find((p) => p.header)!;
    const mp3 = (body: Buffer): MediaPacket => ({ kind: 'audio', codec: AUDIO_MP3, dts: 0, cts: 0, keyframe: false, header: false, data: Buffer.concat([Buffer.from([0x2f]), body]) });
    const broken = [good.subarray(0, 3), good.subarray(0, 100), Buffer.from([0x49, 0x44, 0x33, 4, 0]), Buffer.concat([good.subarray(0, 2), Buffer.from([good[2] | 0x0c]), good.subarray(3)]),
      Buffer.concat([good.subarray(0, 2), Buffer.from([good[2] & 0x0f]), good.subarray(3)]), Buffer.concat([good.subarray(0, 2), Buffer.from([good[2] | 0xf0]), good.subarray(3)]), Buffer.alloc(0)];
    for (const b of broken) {
      const enc = mp4Encoder({ video, audio: mp3(b) });
      assert.ok(enc, 'the video is still recorded');
      // Video alone holds its moov back for a track that may join (up to 1 s): the file's bytes, begin to end.
      const init = Buffer.concat([enc.begin(), enc.end(0).tail]);
      assert.equal(init.toString('latin1').split('trak').length - 1, 1, 'one track: video');
      assert.equal(mp4Encoder({ video: null, audio: mp3(b) }), null, 'MP3 alone with a broken header: no file');
    }
    const rx = new Mp4Remuxer(false, false);
    assert.equal(rx.setMp3(good), true);
    for (const b of broken) assert.equal(rx.push(mp3(b), 0), false, 'a broken frame is no sample');
    assert.equal(rx.push(mp3(good), 0), true);
  });

  test('MP3 that joins a video-only file: taken while the moov waits (its first second), refused once the moov is out', () => {
    const pkts = flvPackets(44100, 2);
    const video = pkts.find((p) => p.header)!;
    const firstAudio = pkts.find((p) => p.kind === 'audio')!;
    const frames = pkts.filter((p) => p.kind === 'video' && !p.header);
    const enc = mp4Encoder({ video, audio: null })!;
    assert.equal(enc.begin().length, 0, 'no moov yet');
    // Half a second of video (a key frame at 0 only): no fragment while a track may still join.
    assert.equal(enc.add(frames.slice(0, 13).map((p, i) => ({ p, t: i * 40 }))).length, 0);
    assert.equal(enc.join!(firstAudio), true);
    const out = Buffer.concat([enc.add(frames.slice(13, 40).map((p, i) => ({ p, t: (13 + i) * 40 }))), enc.end(1600).tail]);
    assert.equal(out.toString('latin1').split('trak').length - 1, 2, 'video and MP3 in the moov');
    assert.equal(enc.join!(firstAudio), false, 'the moov is written: too late');

    const late = mp4Encoder({ video, audio: null })!;
    late.begin();
    const first = late.add(frames.slice(0, 40).map((p, i) => ({ p, t: i * 40 })));
    assert.ok(first.length > 0 && first.toString('latin1', 4, 8) === 'ftyp', 'past the first second the moov and the first fragment are out');
    assert.equal(late.join!(firstAudio), false);
  });
});
