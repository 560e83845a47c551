import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { FlvDemuxer } from '../../../src/media/flv/demuxer.js';
import { parseAvcSequenceHeader } from '../../../src/media/avc.js';
import type { MediaPacket } from '../../../src/media/packet.js';
import { crc32Mpeg2 } from '../../../src/media/ts/crc32.js';
import { PID_AUDIO, PID_PMT, PID_VIDEO, TimestampUnwrapper, TsMuxer, splitAvcc, toClock90k } from '../../../src/media/ts/muxer.js';
import { readPackets, readPes, readPmt, readSection } from '../../helpers/ts-reader.js';

/** One second of H.264 (with B-frames, so PTS ≠ DTS) and AAC as FLV, demuxed by our demuxer. */
function flvPackets(extra: string[] = [], audio = ['-c:a', 'aac']): MediaPacket[] {
  const args = ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=44100',
    '-t', '1', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '10', '-pix_fmt', 'yuv420p', ...extra, ...audio, '-f', 'flv', '-'];
  const r = spawnSync('ffmpeg', args, { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr?.toString());
  return new FlvDemuxer().push(r.stdout);
}

function ffprobeErrors(ts: Buffer): { stderr: string; frames: string[] } {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'frame=media_type,key_frame', '-of', 'csv=p=0', '-i', 'pipe:0'], { input: ts, maxBuffer: 64 * 1024 * 1024 });
  return { stderr: r.stderr.toString(), frames: r.stdout.toString().trim().split('\n') };
}

const startsWith = (b: Buffer, prefix: number[]) => prefix.every((x, i) => b[i] === x);

/** NAL unit types of an Annex-B access unit (4-byte start codes, as the muxer writes them). */
function nalTypes(b: Buffer): number[] {
  const types: number[] = [];
  for (let i = 0; i + 4 < b.length; i++) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 0 && b[i + 3] === 1) types.push(b[i + 4] & 0x1f);
  }
  return types;
}

describe('MPEG-TS muxer', () => {
  test('CRC-32/MPEG-2 check value', () => {
    assert.equal(crc32Mpeg2(Buffer.from('123456789')), 0x0376e6e7);
  });

  test('a real H.264 + AAC encode: packets, tables, counters, PES timestamps, Annex-B, ADTS; ffprobe reads it cleanly', () => {
    const pkts = flvPackets();
    const mux = new TsMuxer({ video: true, audio: 'aac' });
    const ts = Buffer.concat([mux.tables(), mux.muxAll(pkts)]);
    assert.equal(ts.length % 188, 0, '188-byte aligned');
    const packets = readPackets(ts); // throws on a missing sync byte

    // Continuity counters: each PID counts 0..15 and wraps, never skipping.
    const last = new Map<number, number>();
    for (const p of packets) {
      const prev = last.get(p.pid);
      if (prev !== undefined) assert.equal(p.cc, (prev + 1) & 0xf, `CC on PID ${p.pid}`);
      last.set(p.pid, p.cc);
    }
    assert.ok(packets.filter((p) => p.pid === PID_VIDEO).length > 16, 'enough packets to see the counter wrap');

    // PAT and PMT first, with valid CRCs (a section's CRC over itself including the CRC is 0).
    assert.deepEqual([packets[0].pid, packets[1].pid], [0, PID_PMT]);
    const pat = readSection(packets[0]);
    const pmt = readSection(packets[1]);
    assert.equal(pat.tableId, 0);
    assert.equal(pmt.tableId, 2);
    assert.equal(crc32Mpeg2(pat.section), 0, 'PAT CRC');
    assert.equal(crc32Mpeg2(pmt.section), 0, 'PMT CRC');
    assert.equal(((pat.section[10] & 0x1f) << 8) | pat.section[11], PID_PMT, 'the PAT points at the PMT');
    const prog = readPmt(pmt.section);
    assert.equal(prog.pcrPid, PID_VIDEO);
    assert.deepEqual(prog.streams, [[0x1b, PID_VIDEO], [0x0f, PID_AUDIO]]);

    // Video PES: PTS = (DTS + cts) × 90, DTS only when it differs; key frames carry RAI and PCR.
    const frames = pkts.filter((p) => p.kind === 'video' && !p.header && p.data[1] === 1); // not the end-of-sequence tag
    const pes = readPes(ts, PID_PMT);
    const vpes = pes.filter((p) => p.pid === PID_VIDEO);
    assert.equal(vpes.length, frames.length);
    assert.ok(frames.some((f) => f.cts > 0), 'the encode has B-frames');
    const cfg = parseAvcSequenceHeader(pkts.find((p) => p.kind === 'video' && p.header)!.data);
    vpes.forEach((v, i) => {
      const f = frames[i];
      assert.equal(v.streamId, 0xe0);
      assert.equal(v.dts, f.dts * 90, `DTS of frame ${i}`);
      assert.equal(v.pts, (f.dts + f.cts) * 90, `PTS of frame ${i}`);
      assert.equal(v.randomAccess, f.keyframe, `random_access_indicator of frame ${i}`);
      if (f.keyframe) assert.equal(v.pcr, f.dts * 90, 'PCR at the key frame');
      assert.ok(startsWith(v.payload, [0, 0, 0, 1, 0x09, 0xf0]), 'each access unit opens with an AUD');
      const types = nalTypes(v.payload);
      if (f.keyframe) {
        assert.deepEqual(types.slice(0, 3), [9, 7, 8], 'AUD, SPS, PPS before the IDR');
        assert.ok(v.payload.includes(Buffer.concat([Buffer.from([0, 0, 0, 1]), cfg.sps[0]])), 'the SPS from the sequence header');
        assert.ok(types.includes(5), 'an IDR slice');
      } else {
        assert.ok(!types.includes(7), 'no SPS before a non-IDR frame');
      }
    });

    // Audio PES: one ADTS frame each, length field = raw frame + 7, PTS = DTS (no DTS field).
    const raw = pkts.filter((p) => p.kind === 'audio' && !p.header);
    const apes = pes.filter((p) => p.pid === PID_AUDIO);
    assert.equal(apes.length, raw.length);
    apes.forEach((a, i) => {
      assert.equal(a.streamId, 0xc0);
      assert.equal(a.pts, raw[i].dts * 90);
      assert.equal(a.payload[0], 0xff);
      assert.equal(a.payload[1] & 0xf6, 0xf0, 'ADTS sync word, layer 0');
      const len = ((a.payload[3] & 3) << 11) | (a.payload[4] << 3) | (a.payload[5] >> 5);
      assert.equal(len, raw[i].data.length - 2 + 7);
      assert.equal(a.payload.length, len, 'exactly one ADTS frame, no trailing bytes');
      assert.equal(((a.payload[2] >> 2) & 0xf), 4, 'sampling index 4 = 44.1 kHz');
    });

    const probe = ffprobeErrors(ts);
    assert.equal(probe.stderr, '', probe.stderr);
    assert.equal(probe.frames.filter((f) => f.startsWith('video')).length, frames.length, 'every video frame decodes');
    assert.match(probe.frames.find((f) => f.startsWith('video'))!, /^video,1\b/, 'the first video frame is a key frame');
  });

  test('the last TS packet of a PES is filled with adaptation-field stuffing', () => {
    const mux = new TsMuxer({ video: false, audio: 'mp3' });
    mux.tables();
    const frame = Buffer.from([0x2f, ...Array.from({ length: 20 }, (_, i) => i + 1)]);
    const out = mux.mux({ kind: 'audio', dts: 1000, cts: 0, keyframe: false, header: false, codec: 2, data: frame });
    assert.equal(out.length, 188, 'one TS packet');
    const [p] = readPackets(out);
    assert.equal(p.pid, PID_AUDIO);
    assert.ok(p.pusi);
    assert.equal(p.pcr, 90_000, 'audio-only: the PCR rides on the audio PID');
    // 4 header + 1 length + 1 flags + 6 PCR + stuffing + 14 PES header + 20 payload = 188
    assert.equal(out[4], 188 - 5 - 14 - 20, 'adaptation_field_length');
    assert.ok(out.subarray(12, 188 - 34).every((b) => b === 0xff), 'stuffing bytes are 0xFF');
    assert.deepEqual([...out.subarray(188 - 20)], [...frame.subarray(1)], 'the MP3 frame as it came, without FLV’s codec byte');
  });

  test('AVCC → Annex-B: length prefixes become start codes, in-band AUDs are not doubled, bad lengths are dropped', () => {
    const nal = (type: number, n: number) => Buffer.from([type, ...Array(n).fill(0xaa)]);
    const avcc = (size: number, nals: Buffer[]) => Buffer.concat(nals.flatMap((x) => {
      const l = Buffer.alloc(size);
      l.writeUIntBE(x.length, 0, size);
      return [l, x];
    }));
    assert.deepEqual(splitAvcc(avcc(2, [nal(1, 3), nal(1, 5)]), 2)?.map((x) => x.length), [4, 6]);
    assert.equal(splitAvcc(Buffer.from([0, 0, 0, 9, 1, 2]), 4), null, 'a length past the end');

    const mux = new TsMuxer({ video: true, audio: null });
    const body = avcc(4, [nal(9, 1), nal(1, 10)]);
    const flv = Buffer.concat([Buffer.from([0x27, 1, 0, 0, 0]), body]);
    const ts = mux.mux({ kind: 'video', dts: 40, cts: 0, keyframe: false, header: false, codec: 7, data: flv });
    const [v] = readPes(ts, PID_PMT);
    assert.deepEqual(nalTypes(v.payload), [9, 1], 'one AUD (ours), then the slice');
    assert.deepEqual([...v.payload.subarray(6)], [0, 0, 0, 1, 1, ...Array(10).fill(0xaa)]);

    const bad = Buffer.concat([Buffer.from([0x27, 1, 0, 0, 0]), Buffer.from([0, 0, 1, 0, 5])]);
    assert.equal(mux.mux({ kind: 'video', dts: 80, cts: 0, keyframe: false, header: false, codec: 7, data: bad }).length, 0);
    assert.equal(mux.dropped, 1);
  });

  test('32-bit millisecond timestamps wrap into the 33-bit 90 kHz clock without going back', () => {
    const u = new TimestampUnwrapper();
    const near = 2 ** 32 - 40;
    assert.deepEqual([near, (near + 40) >>> 0, 40, near + 20 >>> 0].map((t) => u.unwrap(t)), [near, 2 ** 32, 2 ** 32 + 40, near + 20],
      'the wrap moves forward; a late packet from before it stays before it');
    const mux = new TsMuxer({ video: false, audio: 'mp3' });
    const frame = (dts: number): MediaPacket => ({ kind: 'audio', dts, cts: 0, keyframe: false, header: false, codec: 2, data: Buffer.from([0x2f, 1, 2, 3]) });
    const a = readPes(mux.mux(frame(near)), PID_PMT)[0].pts;
    const b = readPes(mux.mux(frame(20)), PID_PMT)[0].pts;
    assert.equal(a, toClock90k(near));
    assert.equal((b - a + 2 ** 33) % 2 ** 33, 60 * 90, '60 ms later on the 90 kHz clock, modulo 2^33');
  });

  test('a track change bumps the PMT version; frames of a track not in the PMT are not written', () => {
    const mux = new TsMuxer({ video: true, audio: null });
    const v0 = readPmt(readSection(readPackets(mux.tables())[1]).section);
    assert.equal(v0.streams.length, 1);
    const mp3 = mux.mux({ kind: 'audio', dts: 0, cts: 0, keyframe: false, header: false, codec: 2, data: Buffer.from([0x2f, 1]) });
    assert.equal(mp3.length, 0);
    mux.setTracks({ video: true, audio: 'mp3' });
    const v1 = readPmt(readSection(readPackets(mux.tables())[1]).section);
    assert.equal(v1.version, (v0.version + 1) & 0x1f);
    assert.deepEqual(v1.streams, [[0x1b, PID_VIDEO], [0x03, PID_AUDIO]]);
  });
});
