import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { flvHeader, flvTags } from '../../../src/media/flv/muxer.js';
import { initSegment, mediaSegment } from '../../../src/media/mp4/index.js';
import type { Mp4Track } from '../../../src/media/mp4/types.js';
import { PASS_THROUGH, type MediaPacket } from '../../../src/media/packet.js';
import { FlvIndexer } from '../../../src/record/vod/flv-index.js';
import { Mp4Indexer } from '../../../src/record/vod/mp4-index.js';
import { renderPlaylist } from '../../../src/record/vod/playlist.js';
import { DEFAULT_INDEX_LIMITS, type FileReader, type IndexLimits } from '../../../src/record/vod/types.js';
import { MAX_CUT_BYTES } from '../../../src/record/vod/handler.js';

/**
 * The recordings' indexes from bytes alone: where segments are cut, that a growing file's index
 * grows with it, and that a damaged or hostile file cannot make the index read or hold more
 * than its bounds (tags and boxes counted, a box's size, segments listed).
 */

/** A reader of the first `size` bytes of `b` that counts what it reads. */
function reader(b: Buffer, size = b.length): FileReader & { bytesRead: number } {
  const r = {
    size,
    bytesRead: 0,
    read: async (position: number, length: number) => {
      const out = b.subarray(position, Math.min(size, position + length));
      r.bytesRead += out.length;
      return out;
    },
  };
  return r;
}

const video = (dts: number, key: boolean, bytes = 500): MediaPacket => ({ kind: 'video', dts, cts: 0, keyframe: key, header: false, codec: 7, data: Buffer.concat([Buffer.from([key ? 0x17 : 0x27, 1, 0, 0, 0]), Buffer.alloc(bytes)]) });
const audio = (dts: number): MediaPacket => ({ kind: 'audio', dts, cts: 0, keyframe: false, header: false, codec: 10, data: Buffer.from([0xaf, 1, 1, 2, 3]) });

/** `seconds` of 25 fps video with a key frame every second and AAC-like audio, as a recorded FLV file. */
function flvFile(seconds: number, frameBytes = 500): Buffer {
  const pkts: MediaPacket[] = [
    { kind: 'video', dts: 0, cts: 0, keyframe: true, header: true, codec: 7, data: Buffer.from([0x17, 0, 0, 0, 0, 1, 2]) },
    { kind: 'audio', dts: 0, cts: 0, keyframe: false, header: true, codec: 10, data: Buffer.from([0xaf, 0, 0x12, 0x10]) },
  ];
  for (let f = 0; f < seconds * 25; f++) {
    pkts.push(video(f * 40, f % 25 === 0, frameBytes));
    if (f % 2 === 0) pkts.push(audio(f * 40));
  }
  return Buffer.concat([flvHeader(true, true), flvTags(pkts, PASS_THROUGH)]);
}

const TRACKS: Mp4Track[] = [
  { id: 1, kind: 'video', codec: 'avc', timescale: 90_000, config: Buffer.from([1, 0x42, 0, 0x1e, 0xff, 0xe0, 0]), width: 320, height: 240 },
  { id: 2, kind: 'audio', codec: 'aac', timescale: 44_100, config: Buffer.from([0x12, 0x10]), sampleRate: 44_100, channels: 2 },
];

/** `seconds` of one-second fragments (a sync sample first, 25 frames of 3600 ticks) as a recorded fMP4 file. */
function mp4File(seconds: number): Buffer {
  const parts = [initSegment(TRACKS)];
  for (let s = 0; s < seconds; s++) {
    const v = Array.from({ length: 25 }, (_, i) => ({ dts: (s * 25 + i) * 3600, cts: 0, duration: 3600, key: i === 0, data: Buffer.alloc(300) }));
    const a = Array.from({ length: 43 }, (_, i) => ({ dts: (s * 43 + i) * 1024, cts: 0, duration: 1024, key: true, data: Buffer.alloc(20) }));
    parts.push(mediaSegment(s + 1, [{ track: TRACKS[0], samples: v }, { track: TRACKS[1], samples: a }]));
  }
  return Buffer.concat(parts);
}

const limits = (o: Partial<IndexLimits>): IndexLimits => ({ ...DEFAULT_INDEX_LIMITS, ...o });

describe('VOD index of FLV recordings', () => {
  test('segments start at key frames once 4 s are held; a growing file lists only whole segments, then the rest when it is finished', async () => {
    const file = flvFile(10);
    const ix = new FlvIndexer(DEFAULT_INDEX_LIMITS);
    let index = await ix.update(reader(file, Math.floor(file.length * 0.7)), false);
    assert.deepEqual(index.segments.map((s) => s.startMs), [0], 'the second segment (from 4 s) is still open at 7 s');
    index = await ix.update(reader(file), false);
    assert.deepEqual(index.segments.map((s) => s.startMs), [0, 4000]);
    index = await ix.update(reader(file), true);
    assert.deepEqual(index.segments.map((s) => [s.startMs, s.durationMs]), [[0, 4000], [4000, 4000], [8000, 2000]]);
    const s = index.segments;
    assert.equal(s[0].offset + s[0].length, s[1].offset, 'segments are contiguous');
    assert.equal(s[2].offset + s[2].length, file.length, 'the last one ends with the file');
    assert.deepEqual(index.headers.map((h) => h.kind), ['video', 'audio']);
    assert.equal(index.capped, false);
  });

  test('a file cut in the middle of a tag indexes up to the last whole tag, without an error', async () => {
    const file = flvFile(6).subarray(0, -7);
    const index = await new FlvIndexer(DEFAULT_INDEX_LIMITS).update(reader(file), true);
    assert.equal(index.segments.length, 2);
    assert.ok(index.segments[1].offset + index.segments[1].length < file.length);
  });

  test('past the bound of tags counted the index stops reading (and says so)', async () => {
    const file = flvFile(60, 5000);
    const r = reader(file);
    const index = await new FlvIndexer(limits({ maxItems: 300 })).update(r, true);
    assert.equal(index.capped, true);
    assert.ok(index.segments.length <= 2, `${index.segments.length} segments from 300 tags`);
    assert.ok(r.bytesRead < file.length / 2, `read ${r.bytesRead} of ${file.length} bytes`);
  });

  test('a tag claiming more than the tag bound, or segments past their bound, stop the index', async () => {
    const file = Buffer.from(flvFile(3));
    file.writeUIntBE(0xffffff, 13 + 1, 3);
    const index = await new FlvIndexer(limits({ maxTagBytes: 1024 * 1024 })).update(reader(file), true);
    assert.equal(index.capped, true);
    assert.equal(index.segments.length, 0);
    const many = await new FlvIndexer(limits({ maxSegments: 3 })).update(reader(flvFile(40)), true);
    assert.equal(many.capped, true);
    assert.ok(many.segments.length <= 4, `${many.segments.length} segments`);
  });

  test('a segment without a key frame is closed at the byte bound', async () => {
    const pkts = [video(0, true), ...Array.from({ length: 100 }, (_, i) => video((i + 1) * 40, false, 2000))];
    const file = Buffer.concat([flvHeader(false, true), flvTags(pkts, PASS_THROUGH)]);
    const index = await new FlvIndexer(limits({ maxSegmentBytes: 50_000 })).update(reader(file), true);
    assert.ok(index.segments.length >= 4, `${index.segments.length} segments`);
    assert.ok(index.segments.every((s) => s.length <= 50_000 + 2100), 'each at most the bound plus one tag');
  });
});

describe('VOD index of fMP4 recordings', () => {
  test('ftyp+moov is the init section, moof+mdat runs of 4 s from sync samples the segments; a fragment still being written is not listed', async () => {
    const file = mp4File(10);
    const init = initSegment(TRACKS).length;
    const ix = new Mp4Indexer(DEFAULT_INDEX_LIMITS);
    let index = await ix.update(reader(file, file.length - 10), false);
    assert.deepEqual(index.init, { offset: 0, length: init });
    assert.deepEqual(index.segments.map((s) => s.startMs), [0, 4000], 'the last fragment is incomplete, its group still open');
    index = await ix.update(reader(file), true);
    assert.deepEqual(index.segments.map((s) => [s.startMs, s.durationMs]), [[0, 4000], [4000, 4000], [8000, 2000]]);
    assert.equal(index.segments[0].offset, init);
    assert.equal(index.segments[2].offset + index.segments[2].length, file.length);
    const text = renderPlaylist([{ info: { state: 'done' } as never, id: 'abcd', path: '', index, wallMs: null }], { fromMs: -Infinity, toMs: Infinity }, 'cam');
    assert.match(text!, /^#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI="cam\/abcd.mp4",BYTERANGE="\d+@0"\n#EXTINF:4.000,\n#EXT-X-BYTERANGE:\d+@\d+\ncam\/abcd.mp4\n/);
    assert.ok(text!.endsWith('#EXT-X-ENDLIST\n'));
  });

  test('a moof larger than the box bound, a box size past the end, or more boxes than counted stop the index', async () => {
    const file = mp4File(6);
    const big = await new Mp4Indexer(limits({ maxBoxBytes: 1000 })).update(reader(file), true);
    assert.equal(big.capped, true);
    assert.equal(big.segments.length, 0);
    const counted = reader(mp4File(60));
    const few = await new Mp4Indexer(limits({ maxItems: 10 })).update(counted, true);
    assert.equal(few.capped, true);
    assert.ok(few.segments.length <= 2);
    assert.ok(counted.bytesRead < counted.size / 4, `read ${counted.bytesRead} of ${counted.size}`);
    const hostile = Buffer.from(file);
    const moof = initSegment(TRACKS).length;
    hostile.writeUInt32BE(1, moof);
    hostile.writeUInt32BE(0xffffffff, moof + 8);
    const h = await new Mp4Indexer(DEFAULT_INDEX_LIMITS).update(reader(hostile), true);
    assert.equal(h.segments.length, 0, 'a 64-bit size past the end is waited for, never read');
  });
});

test('the bytes all cuts in flight may hold leave room for the largest segment the index allows', () => {
  // A segment closes at the first frame past maxSegmentBytes: at most that and one tag.
  assert.ok(MAX_CUT_BYTES >= DEFAULT_INDEX_LIMITS.maxSegmentBytes + DEFAULT_INDEX_LIMITS.maxTagBytes);
});
