import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBatch } from '../../../src/live/types.js';
import { AUDIO_MP3, type MediaPacket } from '../../../src/media/packet.js';
import { FlvDemuxer } from '../../../src/media/flv/demuxer.js';
import { FlvFileEncoder } from '../../../src/record/flv-file.js';
import { StreamRecording } from '../../../src/record/session.js';
import { defaultDvrConfig, type DvrConfig, type RecordingInfo } from '../../../src/record/types.js';
import { syntheticStream } from '../../helpers/synthetic.js';
import { readFileSync } from 'node:fs';

/** A stream's recording fed packets directly (no sockets, real files): the plan's decisions. */

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function recording(cfg: Partial<DvrConfig>, frozenClock = false): { rec: StreamRecording; done: RecordingInfo[]; warnings: string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sg-dvr-unit-'));
  dirs.push(dir);
  const done: RecordingInfo[] = [];
  const warnings: string[] = [];
  let clock = 1_000_000;
  const rec = new StreamRecording({
    name: { vhost: 'v', app: 'live', stream: 's' },
    config: { ...defaultDvrConfig(), enabled: true, path: `${dir}/[stream].[timestamp].flv`, ...cfg },
    hasVideo: () => true,
    encoder: (_c, h) => new FlvFileEncoder(h),
    warn: (l) => warnings.push(l),
    info: () => {},
    opened: () => {},
    finished: (r) => done.push(r),
    // Each file gets its own [timestamp].
    now: () => (frozenClock ? clock : (clock += 1000)),
  });
  return { rec, done, warnings, dir };
}

function feed(rec: StreamRecording, pkts: Iterable<MediaPacket>): void {
  for (const p of pkts) rec.write(makeBatch([p]));
}

describe('dvr plans', () => {
  test('a codec change mid-session starts a new file that opens with the new sequence header', async () => {
    const { rec, done, dir } = recording({ plan: 'session' });
    const first = [...syntheticStream(3000, { gop: 25 })];
    feed(rec, first);
    const header = first.find((p) => p.kind === 'video' && p.header)!;
    const changed: MediaPacket = { ...header, data: Buffer.concat([header.data, Buffer.from([0])]) };
    feed(rec, [changed, ...[...syntheticStream(2000, { gop: 25, startMs: 3000 })].filter((p) => !p.header)]);
    rec.end('unpublished');
    await rec.settled();
    assert.equal(done.length, 2, 'two files');
    const files = readdirSync(dir).sort();
    const second = new FlvDemuxer();
    const pkts = second.push(readFileSync(join(dir, files[1])));
    const videoHeader = pkts.find((p) => p.kind === 'video' && p.header)!;
    assert.ok(videoHeader.data.equals(changed.data), 'the second file carries the new header');
    // Files finish as their writes drain, so the second (shorter) can finish first: order by start.
    const byStart = [...done].sort((a, b) => a.startMs! - b.startMs!);
    assert.ok(Math.abs(byStart[0].durationMs! - 3000) <= 50 && Math.abs(byStart[1].durationMs! - 2000) <= 50, `${byStart.map((d) => d.durationMs)}`);
  });

  test('segment cuts in one batch (one millisecond) still make files of their own names: none overwrites another', async () => {
    const { rec, done, dir } = recording({ plan: 'segment', durationMs: 1000 }, true);
    rec.write(makeBatch([...syntheticStream(6000, { gop: 25 })]));
    rec.end('unpublished');
    await rec.settled();
    assert.equal(done.length, 6, `${done.map((d) => d.file)}`);
    assert.equal(new Set(done.map((d) => d.file)).size, 6, 'six names');
    assert.equal(readdirSync(dir).length, 6, readdirSync(dir).join(', '));
  });

  test('segment plan with dvr_wait_keyframe off cuts at dvr_duration whatever the frame; on waits for the key frame', async () => {
    for (const [wait, expect] of [[false, 1000], [true, 2000]] as const) {
      const { rec, done } = recording({ plan: 'segment', durationMs: 1000, waitKeyframe: wait });
      feed(rec, syntheticStream(6000, { gop: 50 }));
      rec.end('unpublished');
      await rec.settled();
      for (const d of done.slice(0, -1)) assert.ok(Math.abs(d.durationMs! - expect) <= 80, `wait ${wait}: ${done.map((x) => x.durationMs)}`);
    }
  });

  test('a header inside a batch (a repeated one, or MP3\'s first frame joining) costs none of the packets before it; the joined codec is listed', async () => {
    const { rec, done, dir } = recording({ plan: 'session' });
    const pkts = [...syntheticStream(3000, { gop: 25 })];
    const aacHeader = pkts.find((p) => p.kind === 'audio' && p.header)!;
    const middle = pkts.findIndex((p) => p.dts >= 1500);
    // One batch: the encoder repeats its AAC header halfway (OBS does at a reconnect).
    rec.write(makeBatch([...pkts.slice(0, middle), aacHeader, ...pkts.slice(middle)]));
    rec.end('unpublished');
    await rec.settled();
    const frames = (list: MediaPacket[]) => list.filter((p) => p.kind !== 'script' && !p.header).length;
    assert.equal(frames(new FlvDemuxer().push(readFileSync(join(dir, readdirSync(dir)[0])))), frames(pkts), 'every frame is in the file');
    assert.deepEqual(done[0].codecs, ['h264', 'aac']);

    const late = recording({ plan: 'session' });
    const video = [...syntheticStream(3000, { gop: 25, audio: false })];
    const at = video.findIndex((p) => p.dts >= 300);
    const mp3: MediaPacket = { kind: 'audio', codec: AUDIO_MP3, dts: 300, cts: 0, keyframe: false, header: false, data: Buffer.from([0x2f, 0xff, 0xfb, 0x90, 0x44, 0, 0]) };
    late.rec.write(makeBatch([...video.slice(0, at), mp3, ...video.slice(at)]));
    late.rec.end('unpublished');
    await late.rec.settled();
    const got = new FlvDemuxer().push(readFileSync(join(late.dir, readdirSync(late.dir)[0])));
    assert.equal(frames(got), frames(video) + 1, 'every video frame and the MP3 frame');
    assert.deepEqual(late.done[0].codecs, ['h264', 'mp3'], 'a track that joins the file is listed');
  });
});
