import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlvDemuxer } from '../../../src/media/flv/demuxer.js';
import type { MediaPacket } from '../../../src/media/packet.js';
import { videoFrame } from '../../../src/media/video.js';
import { initSegment, MAX_FRAGMENT_BYTES, MAX_FRAGMENT_SAMPLES, MAX_PENDING_SAMPLES, mediaSegment, Mp4Error, Mp4Remuxer, type Mp4Sample, type Mp4Track } from '../../../src/media/mp4/index.js';

/** Two seconds of H.264 (B-frames: PTS ≠ DTS) and AAC as FLV, demuxed by our demuxer. */
function flvPackets(): MediaPacket[] {
  const args = ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=44100',
    '-t', '2', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '25', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'flv', '-'];
  const r = spawnSync('ffmpeg', args, { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return new FlvDemuxer().push(r.stdout);
}

/** The init segment and one fragment per GOP, cut at key frames as an HLS segmenter does. */
function remux(pkts: MediaPacket[]): { init: Buffer; segments: Buffer[] } {
  const rx = new Mp4Remuxer(true, true);
  const segments: Buffer[] = [];
  let seq = 1;
  for (const p of pkts) {
    if (p.kind === 'script') continue;
    const ms = rx.timeOf(p);
    const f = videoFrame(p);
    if (f?.part === 'frame' && f.key && rx.holding) segments.push(mediaSegment(seq++, rx.take(ms)));
    rx.push(p, ms);
  }
  segments.push(mediaSegment(seq, rx.take()));
  const tracks = rx.tracks();
  assert.ok(tracks, 'both tracks configured');
  return { init: initSegment(tracks), segments };
}

interface Probe {
  streams: { codec_name: string; width?: number; height?: number; nb_read_frames?: string; duration?: string }[];
  format: { duration: string };
}

/** ffprobe of the bytes as a file (from a pipe it cannot seek, and guesses the duration from the first fragment). */
function ffprobe(file: Buffer): { stderr: string; info: Probe } {
  const dir = mkdtempSync(join(tmpdir(), 'mp4-'));
  try {
    const path = join(dir, 'x.mp4');
    writeFileSync(path, file);
    const r = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames,duration:format=duration', '-of', 'json', '-i', path], { maxBuffer: 64 * 1024 * 1024 });
    return { stderr: r.stderr.toString(), info: JSON.parse(r.stdout.toString()) as Probe };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const boxTypes = (b: Buffer): string[] => {
  const out: string[] = [];
  for (let at = 0; at + 8 <= b.length; at += b.readUInt32BE(at)) out.push(b.toString('latin1', at + 4, at + 8));
  return out;
};

describe('fMP4 writer', () => {
  test('init + fragments of H.264 and AAC read by ffprobe with no error: codecs, size, frames, durations', () => {
    const { init, segments } = remux(flvPackets());
    assert.deepEqual(boxTypes(init), ['ftyp', 'moov']);
    assert.ok(segments.length >= 2, 'one fragment per GOP');
    for (const s of segments) assert.deepEqual(boxTypes(s), ['moof', 'mdat']);
    const { stderr, info } = ffprobe(Buffer.concat([init, ...segments]));
    assert.equal(stderr, '');
    const [v, a] = info.streams;
    assert.equal(v.codec_name, 'h264');
    assert.equal(v.width, 160);
    assert.equal(v.height, 120);
    assert.equal(v.nb_read_frames, '50');
    assert.equal(a.codec_name, 'aac');
    assert.ok(Math.abs(Number(v.duration) - 2) < 0.05, `video duration ${v.duration}`);
    assert.ok(Math.abs(Number(a.duration) - 2) < 0.15, `audio duration ${a.duration}`);
  });

  test('each fragment alone after the init segment decodes (every fragment starts at a key frame)', () => {
    const { init, segments } = remux(flvPackets());
    const { stderr, info } = ffprobe(Buffer.concat([init, segments[1]]));
    assert.equal(stderr, '');
    assert.equal(info.streams[0].nb_read_frames, '25');
  });

  const track: Mp4Track = { id: 1, kind: 'video', codec: 'avc', timescale: 90000, config: Buffer.from([1, 0x42, 0, 0x1e, 0xff, 0xe0, 0]) };
  const sample = (data: Buffer): Mp4Sample => ({ dts: 0, cts: 0, duration: 3600, key: true, data });

  test('a fragment with more samples than the bound is refused before anything is built', () => {
    const samples = Array.from({ length: MAX_FRAGMENT_SAMPLES + 1 }, () => sample(Buffer.alloc(1)));
    assert.throws(() => mediaSegment(1, [{ track, samples }]), Mp4Error);
    assert.ok(mediaSegment(1, [{ track, samples: samples.slice(0, 10) }]).length > 0);
  });

  test('a fragment with more sample bytes than the bound is refused without concatenating them', () => {
    const mib = Buffer.alloc(1024 * 1024);
    const samples = Array.from({ length: MAX_FRAGMENT_BYTES / mib.length + 1 }, () => sample(mib));
    assert.throws(() => mediaSegment(1, [{ track, samples }]), /bytes of samples/);
  });

  test('hostile values: bad track ids, timescales, configs and sample times are refused', () => {
    assert.throws(() => initSegment([]), Mp4Error);
    assert.throws(() => initSegment([{ ...track, id: 0 }]), Mp4Error);
    assert.throws(() => initSegment([track, track]), /twice/);
    assert.throws(() => initSegment([{ ...track, timescale: 0 }]), Mp4Error);
    assert.throws(() => initSegment([{ ...track, config: Buffer.alloc(0) }]), Mp4Error);
    assert.throws(() => initSegment([{ ...track, config: Buffer.alloc(65 * 1024) }]), Mp4Error);
    assert.throws(() => mediaSegment(1, [{ track, samples: [{ ...sample(Buffer.alloc(1)), dts: -1 }] }]), Mp4Error);
    assert.throws(() => mediaSegment(1, [{ track, samples: [{ ...sample(Buffer.alloc(1)), duration: 2 ** 32 }] }]), Mp4Error);
    assert.throws(() => mediaSegment(1, [{ track, samples: [] }]), Mp4Error);
  });

  test('a remuxer that is never cut holds a bounded number of samples', () => {
    const pkts = flvPackets();
    const rx = new Mp4Remuxer(true, true);
    for (const p of pkts.filter((x) => x.header)) rx.push(p, 0);
    const frame = pkts.find((p) => p.kind === 'video' && !p.header)!;
    for (let i = 0; i < MAX_PENDING_SAMPLES + 100; i++) rx.push(frame, i * 40);
    const runs = rx.take();
    assert.equal(runs[0].samples.length, MAX_PENDING_SAMPLES + 1);
    assert.equal(rx.dropped, 99);
  });
});
