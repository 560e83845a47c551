import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../../src/live/hub.js';
import { DEFAULT_SOURCE_OPTIONS, type SourceOptions } from '../../../src/live/source.js';
import { JitterCorrector, JUMP_STEP_MS, type TimeJitter } from '../../../src/live/timeline.js';
import { encodeOnce, type Batch, type EndReason, type Sink } from '../../../src/live/types.js';
import { earliestDts, PASS_THROUGH, playerDts, type MediaPacket } from '../../../src/media/packet.js';
import { FlvDemuxer } from '../../../src/media/flv/demuxer.js';
import { flvHeader, flvTags } from '../../../src/media/flv/muxer.js';

const NAME = { vhost: '__defaultVhost__', app: 'live', stream: 't' };

function hub(timeJitter: TimeJitter, opts: Partial<SourceOptions> = {}): Hub {
  return new Hub({ sourceOptions: () => ({ ...DEFAULT_SOURCE_OPTIONS, mwLatencyMs: 0, timeJitter, ...opts }), takeover: () => false, maxStreams: 0 });
}

const video = (dts: number, keyframe = false, header = false): MediaPacket => ({ kind: 'video', dts, cts: 0, keyframe, header, codec: 7, data: Buffer.from([keyframe ? 0x17 : 0x27, header ? 0 : 1, 0, 0, 0, 9]) });
const audio = (dts: number, header = false): MediaPacket => ({ kind: 'audio', dts, cts: 0, keyframe: false, header, codec: 10, data: Buffer.from([0xaf, header ? 0 : 1, 0x12]) });
const meta = (dts: number, label: string): MediaPacket => ({ kind: 'script', dts, cts: 0, keyframe: false, header: false, codec: 0, data: Buffer.from(label) });

/** A player that keeps what it was sent as FLV bytes, the way HTTP-FLV encodes a shared batch. */
class FlvSink implements Sink {
  readonly writes: { batch: Batch; origin: number; bytes: Buffer }[] = [];
  ended: EndReason | null = null;
  backlog(): number {
    return 0;
  }
  write(batch: Batch, origin: number): void {
    this.writes.push({ batch, origin, bytes: encodeOnce(batch, `flv@${origin}`, (p) => flvTags(p, origin)) });
  }
  end(reason: EndReason): void {
    this.ended = reason;
  }
  /** What a player demuxes from the bytes: `kind[H]@dts`, script tags by their label. */
  seen(): string[] {
    const d = new FlvDemuxer();
    const pkts = d.push(Buffer.concat([flvHeader(true, true), ...this.writes.map((w) => w.bytes)]));
    return pkts.map((p) => (p.kind === 'script' ? `${p.data.toString()}@${p.dts}` : `${p.kind}${p.header ? 'H' : ''}@${p.dts}`));
  }
  dts(): number[] {
    return this.seen().filter((s) => !s.includes('H@') && (s.startsWith('video') || s.startsWith('audio'))).map((s) => Number(s.split('@')[1]));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

/** `frames` video frames 40 ms apart from `from`, each followed by audio 3 ms later; `keys`: which are key frames. */
function publisherAt(s: ReturnType<Hub['publish']>, from: number, frames: number, keys: number[] = [0]): void {
  for (let i = 0; i < frames; i++) {
    const t = from + i * 40;
    s.push(video(t, keys.includes(i)));
    s.push(audio(t + 3));
  }
}

describe('player timelines (time_jitter)', () => {
  test('the corrector keeps steps within 250 ms, turns jumps either way into 10 ms, and steps across the 32-bit wrap', () => {
    const c = new JitterCorrector();
    assert.equal(c.correct(298_000), 298_000, 'the source clock starts where the publisher is');
    assert.equal(c.correct(298_040), 298_040);
    assert.equal(c.correct(298_020), 298_020, 'a step back within 250 ms (interleaved tracks) is kept');
    assert.equal(c.correct(900_000), 298_020 + JUMP_STEP_MS, 'a jump forward is one small step');
    assert.equal(c.correct(0), 298_030 + JUMP_STEP_MS, 'the publisher restarting at 0 is one small step forward');
    assert.equal(c.correct(40), 298_080);
    const w = new JitterCorrector();
    w.correct(0xffff_ffff - 19);
    assert.equal(w.correct(20), 20, 'the wrap at 2^32 ms is a 40 ms step like any other');
  });

  test('playerDts: script at 0, frames from the origin, a frame just before it at 0; PASS_THROUGH changes nothing', () => {
    assert.equal(playerDts(meta(7790, 'm'), 298_000), 0);
    assert.equal(playerDts(video(298_040), 298_000), 40);
    assert.equal(playerDts(audio(297_990), 298_000), 0, 'audio interleaved before the key frame');
    assert.equal(playerDts(video(5), 0xffff_fff0), 21, 'across the wrap');
    assert.equal(playerDts(meta(7790, 'm'), PASS_THROUGH), 7790);
    assert.equal(playerDts(video(298_040), PASS_THROUGH), 298_040);
    assert.equal(earliestDts([meta(1, 'm'), video(500, true), audio(480), video(540)]), 480);
    assert.equal(earliestDts([meta(1, 'm')]), PASS_THROUGH);
  });

  test('full: a player joining 298 s in gets metadata, headers and the GOP at 0, then media on from there', async () => {
    const s = hub('full').publish(NAME, null);
    s.push(meta(0, 'first-meta'));
    s.push(video(0, true, true));
    s.push(audio(0, true));
    publisherAt(s, 298_000, 12, [0, 5, 10]);
    await tick();
    const p = new FlvSink();
    s.subscribe(p, null);
    publisherAt(s, 298_480, 3, []);
    await tick();
    const seen = p.seen();
    // The GOP started at the key frame of frame 10 (298400); its audio follows it.
    assert.deepEqual(seen.slice(0, 5), ['first-meta@0', 'videoH@0', 'audioH@0', 'video@0', 'audio@3']);
    const dts = p.dts();
    assert.deepEqual(dts, [0, 3, 40, 43, 80, 83, 120, 123, 160, 163]);
  });

  test('full: the publisher restarting its clock, or jumping ahead, never sends a player back or far ahead', async () => {
    const s = hub('full').publish(NAME, null);
    s.push(video(0, true, true));
    publisherAt(s, 50_000, 5);
    const p = new FlvSink();
    s.subscribe(p, null);
    publisherAt(s, 50_200, 5, []);
    publisherAt(s, 0, 5); // the encoder's clock restarts
    publisherAt(s, 4_000_000, 5); // and leaps ahead
    await tick();
    const dts = p.dts();
    for (let i = 1; i < dts.length; i++) {
      const step = dts[i] - dts[i - 1];
      assert.ok(step >= -250 && step <= 250, `step ${dts[i - 1]} → ${dts[i]}`);
    }
    assert.equal(dts[0], 0);
    assert.ok(dts.at(-1)! < 2000, `the timeline stays continuous (last ${dts.at(-1)})`);
  });

  test('zero: starts each player at 0 but keeps the publisher\'s jumps; off: passes the publisher\'s timestamps through', async () => {
    const z = hub('zero').publish(NAME, null);
    z.push(video(0, true, true));
    publisherAt(z, 298_000, 3);
    const pz = new FlvSink();
    z.subscribe(pz, null);
    publisherAt(z, 400_000, 1);
    await tick();
    assert.deepEqual(pz.seen().slice(0, 2), ['videoH@0', 'video@0']);
    assert.equal(pz.dts().at(-2), 400_000 - 298_000, 'the jump is kept');

    const o = hub('off').publish({ ...NAME, stream: 'o' }, null);
    o.push(meta(7790, 'm'));
    o.push(video(0, true, true));
    publisherAt(o, 298_000, 3);
    const po = new FlvSink();
    o.subscribe(po, null);
    assert.deepEqual(po.seen().slice(0, 3), ['m@7790', 'videoH@0', 'video@298000'], 'exactly as published');
    assert.deepEqual(po.writes.map((w) => w.origin), [PASS_THROUGH]);
  });

  test('repeated metadata replaces the stored copy; players already watching and players joining get it at 0', async () => {
    const s = hub('full').publish(NAME, null);
    s.push(meta(0, 'meta-1'));
    s.push(video(0, true, true));
    publisherAt(s, 10_000, 5);
    const early = new FlvSink();
    s.subscribe(early, null);
    s.push(meta(17_790, 'meta-2')); // GStreamer's flvmux sends it again mid-stream
    publisherAt(s, 10_200, 5);
    await tick();
    const late = new FlvSink();
    s.subscribe(late, null);
    await tick();
    assert.ok(early.seen().includes('meta-2@0'), early.seen().join(' '));
    const joined = late.seen();
    assert.equal(joined.filter((x) => x.startsWith('meta')).join(), 'meta-2@0', 'only the newest metadata, at 0');
    assert.equal(joined[0], 'meta-2@0', 'ahead of the headers');
  });

  test('players that join at the same key frame share one encoding; a later joiner starts at 0 on its own', async () => {
    const s = hub('full').publish(NAME, null);
    s.push(video(0, true, true));
    publisherAt(s, 298_000, 3);
    const a = new FlvSink();
    const b = new FlvSink();
    s.subscribe(a, null);
    publisherAt(s, 298_120, 1, []);
    s.subscribe(b, null);
    publisherAt(s, 298_160, 6, [5]); // a key frame at 298360
    await tick();
    const c = new FlvSink();
    s.subscribe(c, null);
    publisherAt(s, 298_400, 2, []);
    await tick();
    assert.equal(a.writes.at(-1)!.bytes, b.writes.at(-1)!.bytes, 'the same Buffer: one encoding for both');
    assert.notEqual(a.writes.at(-1)!.origin, c.writes.at(-1)!.origin);
    assert.equal(c.dts()[0], 0);
    assert.equal(a.dts().at(-1)! - c.dts().at(-1)!, 360, 'the same frame, 360 ms later on the earlier joiner\'s timeline');
  });

  test('a player that waits for a key frame (no GOP cached), and one of an audio-only stream, start at 0 too', async () => {
    const s = hub('full', { gopCacheMaxBytes: 0 }).publish(NAME, null);
    s.push(video(0, true, true));
    s.push(audio(0, true));
    publisherAt(s, 298_000, 3);
    const p = new FlvSink();
    s.subscribe(p, null);
    assert.deepEqual(p.seen(), ['videoH@0', 'audioH@0'], 'headers at 0 while it waits');
    publisherAt(s, 298_120, 4, [0, 2]); // key frames at 298120 and 298200
    await tick();
    assert.deepEqual(p.dts().slice(0, 2), [0, 3]);

    const r = hub('full').publish({ ...NAME, stream: 'radio' }, null);
    r.push(audio(0, true));
    for (let i = 0; i < 5; i++) r.push(audio(600_000 + i * 23));
    const q = new FlvSink();
    r.subscribe(q, null);
    for (let i = 5; i < 8; i++) r.push(audio(600_000 + i * 23));
    await tick();
    assert.deepEqual(q.seen(), ['audioH@0', 'audio@0', 'audio@23', 'audio@46']);
  });
});
