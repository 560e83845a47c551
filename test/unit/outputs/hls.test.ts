import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../../src/live/hub.js';
import { DEFAULT_SOURCE_OPTIONS } from '../../../src/live/source.js';
import { makeBatch } from '../../../src/live/types.js';
import { PASS_THROUGH, type MediaPacket } from '../../../src/media/packet.js';
import { loadConfigText } from '../../../src/config/index.js';
import { memoryLogger } from '../../../src/log.js';
import { DEFAULT_HLS_LIMITS, HlsStream, type HlsLimits } from '../../../src/outputs/hls-segmenter.js';
import { HlsOutput } from '../../../src/outputs/hls.js';
import { UploadStore } from '../../../src/ingest/hls-put.js';
import { GatewayError } from '../../../src/errors.js';
import { readPackets } from '../../helpers/ts-reader.js';
import { syntheticStream, type SyntheticOptions } from '../../helpers/synthetic.js';

const AV = { hasVideo: true, tracks: () => ({ video: true, audio: 'aac' as const }) };
const AUDIO_ONLY = { hasVideo: false, tracks: () => ({ video: false, audio: 'aac' as const }) };

function limits(o: Partial<HlsLimits> = {}): HlsLimits {
  return { ...DEFAULT_HLS_LIMITS, fragmentS: 2, windowS: 12, ...o };
}

/** Feeds `ms` of synthetic media in batches of about a third of a second, as the hub's merged writes would. */
function feed(sink: { write: (b: ReturnType<typeof makeBatch>, origin: number) => void }, ms: number, o: SyntheticOptions = {}, onBatch?: () => void): void {
  let batch: MediaPacket[] = [];
  for (const p of syntheticStream(ms, o)) {
    batch.push(p);
    if (batch.length >= 12) {
      sink.write(makeBatch(batch), PASS_THROUGH);
      batch = [];
      onBatch?.();
    }
  }
  if (batch.length > 0) sink.write(makeBatch(batch), PASS_THROUGH);
}

function tags(playlist: string, name: string): string[] {
  return playlist.split('\n').filter((l) => l.startsWith(`#${name}`));
}

describe('HLS segmenter', () => {
  test('ten minutes of media: segments cut at key frames every 2 s, window and memory bounded, ENDLIST at the end', () => {
    const s = new HlsStream('cam', limits(), 100);
    const sink = s.attach(AV);
    let maxBytes = 0;
    let maxSegments = 0;
    feed(sink, 10 * 60_000, { gop: 50 }, () => {
      maxBytes = Math.max(maxBytes, s.bytes);
      maxSegments = Math.max(maxSegments, s.window().length);
    });
    const win = s.window();
    assert.ok(maxSegments <= 7, `at most 12 s + one fragment of 2 s segments (${maxSegments})`);
    const segBytes = win[0].data.length;
    assert.ok(maxBytes <= (7 + 3 + 1) * segBytes * 1.1, `memory bounded by the window (${maxBytes} bytes, segments of ${segBytes})`);
    for (const seg of win) {
      assert.ok(Math.abs(seg.durationS - 2) < 0.001, `2 s segments: ${seg.durationS}`);
      const pk = readPackets(seg.data);
      assert.deepEqual([pk[0].pid, pk[1].pid], [0, 0x1001], 'each segment opens with PAT and PMT');
      assert.ok(pk[2].randomAccess && pk[2].pid === 0x100, 'then the key frame');
    }
    assert.equal(win.at(-1)!.seq, 100 + 10 * 60 / 2 - 2, 'numbered from 100, one per 2 s (the last one still open)');
    const list = s.playlist();
    assert.deepEqual(tags(list, 'EXT-X-TARGETDURATION'), ['#EXT-X-TARGETDURATION:2']);
    assert.deepEqual(tags(list, 'EXT-X-MEDIA-SEQUENCE'), [`#EXT-X-MEDIA-SEQUENCE:${win[0].seq}`]);
    assert.deepEqual(tags(list, 'EXT-X-ENDLIST'), []);
    assert.match(list, new RegExp(`#EXTINF:2\\.000,\\ncam-${win[0].seq}\\.ts\\n`));
    assert.ok(s.segment(win[0].seq - 1), 'a segment just out of the window can still be fetched');
    assert.equal(s.segment(win[0].seq - 10), undefined, 'older ones are gone');

    sink.end('unpublished');
    assert.equal(s.window().at(-1)!.seq, 100 + 10 * 60 / 2 - 1, 'the open segment is closed at the end');
    assert.deepEqual(tags(s.playlist(), 'EXT-X-ENDLIST'), [], 'not yet: the publisher may come back');
    assert.ok(s.seal());
    assert.deepEqual(tags(s.playlist(), 'EXT-X-ENDLIST'), ['#EXT-X-ENDLIST']);
  });

  test('audio-only streams are cut by time', () => {
    const s = new HlsStream('radio', limits({ fragmentS: 1, windowS: 4 }));
    const sink = s.attach(AUDIO_ONLY);
    feed(sink, 10_000, { video: false });
    const d = s.window().map((x) => x.durationS);
    assert.ok(d.length >= 4 && d.every((x) => x >= 1 && x < 1.05), d.join());
  });

  test('a republish adds EXT-X-DISCONTINUITY and keeps numbering; DISCONTINUITY-SEQUENCE counts what slid out', () => {
    const s = new HlsStream('re', limits({ windowS: 6 }), 0);
    const one = s.attach(AV);
    feed(one, 8_000);
    one.end('unpublished');
    assert.ok(!s.ended && s.idle);
    const last = s.window().at(-1)!.seq;
    const two = s.attach(AV);
    assert.ok(!s.seal(), 'not while a publisher is attached');
    feed(two, 5_000); // timestamps start again from 0
    let list = s.playlist();
    assert.equal(tags(list, 'EXT-X-DISCONTINUITY').length, 1);
    assert.match(list, new RegExp(`re-${last}\\.ts\\n#EXT-X-DISCONTINUITY\\n#EXTINF:2\\.000,\\nre-${last + 1}\\.ts`));
    assert.deepEqual(tags(list, 'EXT-X-ENDLIST'), []);
    // Once the discontinuity's segment has slid out, the sequence number says so (RFC 8216 §4.3.3.3).
    feed(two, 20_000, { startMs: 5_000 });
    list = s.playlist();
    assert.deepEqual(tags(list, 'EXT-X-DISCONTINUITY-SEQUENCE'), ['#EXT-X-DISCONTINUITY-SEQUENCE:1']);
    // ENDLIST is added once and is final: an ended playlist takes no publisher (RFC 8216 §6.2.1).
    two.end('unpublished');
    const three = s.attach(AV);
    three.end('unpublished');
    assert.deepEqual(tags(s.playlist(), 'EXT-X-ENDLIST'), []);
    assert.ok(s.seal());
    const sealed = s.playlist();
    assert.deepEqual(tags(sealed, 'EXT-X-ENDLIST'), ['#EXT-X-ENDLIST']);
    assert.throws(() => s.attach(AV), /never loses EXT-X-ENDLIST/);
    assert.equal(s.playlist(), sealed);
  });

  test('no key frame for too long: the growing segment is dropped, memory stays bounded', () => {
    const s = new HlsStream('nokey', limits({ maxSegmentBytes: 200_000 }));
    const sink = s.attach(AV);
    let max = 0;
    feed(sink, 60_000, { gop: 0 }, () => (max = Math.max(max, s.bytes)));
    assert.ok(max <= 200_000 + 20_000, `${max} bytes`);
    assert.ok(s.oversized > 0);
    assert.equal(s.window().length, 0);
  });

  test('segment durations stay right across the 32-bit millisecond wrap', () => {
    const s = new HlsStream('wrap', limits());
    const sink = s.attach(AV);
    feed(sink, 12_000, { startMs: 2 ** 32 - 5_000 });
    const d = s.window().map((x) => x.durationS);
    assert.ok(d.length >= 5 && d.every((x) => Math.abs(x - 2) < 0.001), d.join());
  });

  test('a playlist request waits for the first segment, up to a bound', async () => {
    const s = new HlsStream('w', limits());
    const sink = s.attach(AV);
    assert.equal(await s.ready(20), false, 'nothing yet');
    const waiting = s.ready(5_000);
    feed(sink, 2_100);
    assert.equal(await waiting, true);
  });
});

describe('HLS output on a hub', () => {
  test('follows publishes without taking a player seat; an ended stream expires after hls_dispose', async () => {
    const config = loadConfigText('vhost __defaultVhost__ { hls { enabled on; hls_fragment 1; hls_window 3; hls_dispose 50ms; } }', 't.conf');
    const hub = new Hub({ sourceOptions: () => ({ ...DEFAULT_SOURCE_OPTIONS, mwLatencyMs: 0, maxPlayers: 1 }), takeover: () => false, maxStreams: 0 });
    const out = new HlsOutput({ hub, vhost: () => config.vhosts[0], log: memoryLogger().log });
    try {
      const name = { vhost: '__defaultVhost__', app: 'live', stream: 's' };
      const src = hub.publish(name, null);
      assert.equal(src.playerCount, 0);
      assert.ok(src.canAcceptPlayer(), 'the segmenter does not count against max_players');
      for (const p of syntheticStream(3_000, { gop: 25 })) src.push(p);
      await new Promise((r) => setImmediate(r));
      assert.ok(out.find(name)!.window().length >= 2);
      assert.ok(out.claims(name, 'm3u8'));
      const seg = out.find(name)!.window()[0];
      assert.ok(out.claims({ ...name, stream: `s-${seg.seq}` }, 'ts'));
      assert.ok(!out.claims({ ...name, stream: 's-1' }, 'ts'));
      src.end();
      assert.ok(!out.find(name)!.ended, 'open for the publisher to come back');
      await new Promise((r) => setTimeout(r, 35));
      assert.ok(out.find(name)!.ended, 'ENDLIST after the grace (half of hls_dispose here)');
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(out.find(name), undefined, 'expired');
      assert.equal(out.bytes(), 0);
    } finally {
      out.close();
    }
  });
});

describe('HLS upload store', () => {
  test('per-file and total bounds, replace, expiry', () => {
    let now = 0;
    const store = new UploadStore({ maxFileBytes: 1000, maxTotalBytes: 2500, ttlMs: 60_000 }, () => now);
    try {
      assert.throws(() => store.put('v/live/a.ts', 'ts', Buffer.alloc(1001)), (e: unknown) => e instanceof GatewayError && e.status === 413);
      assert.equal(store.put('v/live/a.ts', 'ts', Buffer.alloc(1000)), true);
      assert.equal(store.put('v/live/b.ts', 'ts', Buffer.alloc(1000)), true);
      assert.throws(() => store.put('v/live/c.ts', 'ts', Buffer.alloc(1000)), (e: unknown) => e instanceof GatewayError && e.status === 507 && /2500 bytes/.test(e.message));
      assert.equal(store.put('v/live/a.ts', 'ts', Buffer.alloc(500)), false, 'a rewrite replaces');
      assert.equal(store.bytes, 1500);
      assert.equal(store.get('v/live/a.ts')?.type, 'video/mp2t');
      now = 30_000;
      store.put('v/live/up.m3u8', 'm3u8', Buffer.from('#EXTM3U\n'));
      now = 61_000;
      assert.equal(store.get('v/live/a.ts'), undefined, 'not refreshed for a minute: gone');
      assert.ok(store.get('v/live/up.m3u8'));
      store.sweep();
      assert.equal(store.count, 1);
      assert.equal(store.bytes, 8);
      assert.ok(store.remove('v/live/up.m3u8'));
      assert.equal(store.bytes, 0);
    } finally {
      store.close();
    }
  });
});
