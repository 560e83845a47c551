import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../../src/live/hub.js';
import { DEFAULT_SOURCE_OPTIONS, type Source } from '../../../src/live/source.js';
import { loadConfigText } from '../../../src/config/index.js';
import { memoryLogger } from '../../../src/log.js';
import { HlsOutput } from '../../../src/outputs/hls.js';
import type { HlsStream } from '../../../src/outputs/hls-segmenter.js';
import { syntheticStream } from '../../helpers/synthetic.js';
import { rng } from '../../helpers/random.js';

/**
 * RFC 8216 §6.2.1: a server may append to a live playlist, remove segments from its front and add
 * EXT-X-ENDLIST, nothing else. Whatever publishers do (leave, come back at once, come back late,
 * come and go before a segment is cut), what one URL serves must stay that way.
 */

const GRACE_MS = 40;
const DISPOSE_MS = 240;
const NAME = { vhost: '__defaultVhost__', app: 'live', stream: 'e' };

interface Seen {
  stream: HlsStream;
  sequence: number;
  segments: { uri: string; seq: number; extinf: string; discontinuity: boolean }[];
  ended: boolean;
  text: string;
}

function parse(stream: HlsStream): Seen {
  const text = stream.playlist();
  const lines = text.split('\n');
  const segments: Seen['segments'] = [];
  let disc = false;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '#EXT-X-DISCONTINUITY') disc = true;
    if (lines[i].startsWith('#EXTINF:')) {
      const uri = lines[i + 1];
      segments.push({ uri, seq: Number(/-(\d+)\.ts$/.exec(uri)![1]), extinf: lines[i], discontinuity: disc });
      disc = false;
    }
  }
  const sequence = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)![1]);
  return { stream, sequence, segments, ended: lines.includes('#EXT-X-ENDLIST'), text };
}

/** Checks one step of what the URL served; returns a description of the breach, or null. */
function breach(prev: Seen, next: Seen, highestSeq: number): string | null {
  if (next.stream !== prev.stream) {
    if (!prev.ended) return `a playlist without ENDLIST was replaced:\n${prev.text}`;
    if (next.segments.some((s) => s.seq <= highestSeq)) return `the new playlist reuses numbers up to ${highestSeq}:\n${next.text}`;
    return null;
  }
  if (prev.ended) return next.text === prev.text ? null : `an ended playlist changed:\n${prev.text}\n→\n${next.text}`;
  if (next.sequence < prev.sequence) return `MEDIA-SEQUENCE went back ${prev.sequence} → ${next.sequence}`;
  for (const s of prev.segments) {
    if (s.seq < next.sequence) continue;
    const same = next.segments.find((x) => x.seq === s.seq);
    if (!same || same.extinf !== s.extinf || same.discontinuity !== s.discontinuity || same.uri !== s.uri) return `segment ${s.uri} changed or vanished from the middle`;
  }
  return null;
}

async function run(seed: number, actions: number): Promise<{ publishes: number; fresh: number; sealed: number }> {
  const config = loadConfigText(`vhost __defaultVhost__ { hls { enabled on; hls_fragment 1; hls_window 4; hls_dispose ${DISPOSE_MS}ms; } }`, 't.conf');
  const hub = new Hub({ sourceOptions: () => ({ ...DEFAULT_SOURCE_OPTIONS, mwLatencyMs: 0 }), takeover: () => false, maxStreams: 0 });
  const out = new HlsOutput({ hub, vhost: () => config.vhosts[0], log: memoryLogger().log, republishGraceMs: GRACE_MS });
  const random = rng(seed);
  let live: Source | null = null;
  let clock = 0;
  let prev: Seen | null = null;
  let highestSeq = -1;
  const counts = { publishes: 0, fresh: 0, sealed: 0 };
  const look = (): void => {
    const stream = out.find(NAME) as HlsStream | undefined; // a TS playlist: this vhost has no hls_fmp4
    if (!stream) {
      prev = null;
      return;
    }
    const seen = parse(stream);
    if (prev) {
      const why = breach(prev, seen, highestSeq);
      assert.equal(why, null, `seed ${seed}: ${why}`);
      if (seen.stream !== prev.stream) counts.fresh++;
      if (seen.ended && !prev.ended) counts.sealed++;
    }
    for (const s of seen.segments) highestSeq = Math.max(highestSeq, s.seq);
    prev = seen;
  };
  try {
    for (let i = 0; i < actions; i++) {
      const r = random();
      if (!live && r < 0.5) {
        live = hub.publish(NAME, null);
        counts.publishes++;
        // Each publish's clock starts anywhere, as encoders' do.
        clock = Math.floor(random() * 100_000);
      } else if (live && r < 0.35) {
        live.end();
        live = null;
      } else if (live) {
        const ms = Math.floor(random() * 2500);
        for (const p of syntheticStream(ms, { startMs: clock, gop: 25 })) live.push(p);
        clock += ms;
        await new Promise((res) => setImmediate(res));
      }
      look();
      // Pauses around the grace and the dispose time, watched closely.
      const wait = random() < 0.5 ? random() * GRACE_MS * 1.5 : random() * DISPOSE_MS * 1.3;
      const until = performance.now() + wait;
      while (performance.now() < until) {
        await new Promise((res) => setTimeout(res, 5));
        look();
      }
    }
    live?.end();
    await new Promise((res) => setTimeout(res, GRACE_MS * 3));
    look();
    const last = prev as Seen | null;
    if (last) assert.ok(last.ended, `seed ${seed}: ENDLIST after the last publisher left`);
  } finally {
    out.close();
  }
  return counts;
}

describe('HLS playlists are append-only across publishes (RFC 8216 §6.2.1)', () => {
  test('no sequence of publish, unpublish and republish makes a playlist lose ENDLIST, change a segment or go back', async () => {
    const totals = { publishes: 0, fresh: 0, sealed: 0 };
    for (const seed of [1, 2, 3]) {
      const c = await run(seed, 40);
      totals.publishes += c.publishes;
      totals.fresh += c.fresh;
      totals.sealed += c.sealed;
    }
    // The runs must have gone through the cases that matter, or they prove nothing.
    assert.ok(totals.sealed >= 3, `ENDLIST added ${totals.sealed} times`);
    assert.ok(totals.fresh >= 1, `a fresh playlist replaced an ended one ${totals.fresh} times`);
    assert.ok(totals.publishes >= 10, `${totals.publishes} publishes`);
  });

  test('a publisher back within the grace continues after EXT-X-DISCONTINUITY; one back later waits for the ended playlist to go', async () => {
    const config = loadConfigText(`vhost __defaultVhost__ { hls { enabled on; hls_fragment 1; hls_window 10; hls_dispose ${DISPOSE_MS}ms; } }`, 't.conf');
    const hub = new Hub({ sourceOptions: () => ({ ...DEFAULT_SOURCE_OPTIONS, mwLatencyMs: 0 }), takeover: () => false, maxStreams: 0 });
    const out = new HlsOutput({ hub, vhost: () => config.vhosts[0], log: memoryLogger().log, republishGraceMs: GRACE_MS });
    const publishFor = (ms: number, startMs: number) => {
      const s = hub.publish(NAME, null);
      for (const p of syntheticStream(ms, { startMs, gop: 25 })) s.push(p);
      return s;
    };
    try {
      publishFor(3000, 0).end();
      const first = out.find(NAME)!;
      publishFor(3000, 0).end(); // OBS reconnecting: timestamps from 0 again
      assert.equal(out.find(NAME), first);
      assert.equal(first.playlist().match(/#EXT-X-DISCONTINUITY\n/g)?.length, 1);
      assert.ok(!first.ended);
      await new Promise((r) => setTimeout(r, GRACE_MS * 2));
      assert.ok(first.ended, 'ENDLIST once nobody came back');
      const sealed = first.playlist();
      const late = publishFor(3000, 0);
      assert.equal(out.find(NAME), first, 'the ended playlist is still what the URL serves');
      assert.equal(first.playlist(), sealed);
      await new Promise((r) => setTimeout(r, DISPOSE_MS + 50));
      const fresh = out.find(NAME)!;
      assert.notEqual(fresh, first, 'served once the ended one is disposed');
      assert.ok(!fresh.ended);
      assert.ok(fresh.window()[0].seq > first.window().at(-1)!.seq, 'numbered above the old one: no name is reused');
      late.end();
    } finally {
      out.close();
    }
  });
});
