import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../../src/live/hub.js';
import { CountingClient } from '../../../src/live/client.js';
import { DEFAULT_SOURCE_OPTIONS, type SourceOptions } from '../../../src/live/source.js';
import type { Batch, EndReason, Sink } from '../../../src/live/types.js';
import { GatewayError } from '../../../src/errors.js';
import { playerDts, type MediaPacket } from '../../../src/media/packet.js';

const NAME = { vhost: '__defaultVhost__', app: 'live', stream: 's' };

function hub(opts: Partial<SourceOptions> = {}, takeover = false): Hub {
  return new Hub({ sourceOptions: () => ({ ...DEFAULT_SOURCE_OPTIONS, mwLatencyMs: 0, ...opts }), takeover: () => takeover, maxStreams: 0 });
}

function video(dts: number, keyframe: boolean, header = false): MediaPacket {
  return { kind: 'video', dts, cts: 0, keyframe, header, codec: 7, data: Buffer.alloc(header ? 20 : 1000) };
}

function audio(dts: number, header = false): MediaPacket {
  return { kind: 'audio', dts, cts: 0, keyframe: false, header, codec: 10, data: Buffer.alloc(header ? 4 : 200) };
}

/** A sink that records what it is given and reports whatever backlog the test sets. */
class RecordingSink implements Sink {
  batches: Batch[] = [];
  origins: number[] = [];
  endedWith: EndReason | null = null;
  pretendBacklog = 0;
  backlog(): number {
    return this.pretendBacklog;
  }
  write(batch: Batch, origin: number): void {
    this.batches.push(batch);
    this.origins.push(origin);
  }
  end(reason: EndReason): void {
    this.endedWith = reason;
  }
  /** The packets as the player sees them: timestamps on its own timeline. */
  packets(): MediaPacket[] {
    return this.batches.flatMap((b, i) => b.packets.map((p) => ({ ...p, dts: playerDts(p, this.origins[i]) })));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('hub and sources', () => {
  test('a joining player gets headers and the GOP since the last key frame, at once', async () => {
    const h = hub();
    const s = h.publish(NAME, null);
    s.push(video(0, false, true));
    s.push(audio(0, true));
    s.push(video(0, true));
    s.push(audio(20));
    s.push(video(40, false));
    s.push(video(80, true)); // a new GOP starts here
    s.push(video(120, false));
    const sink = new RecordingSink();
    s.subscribe(sink, null);
    const got = sink.packets().map((p) => `${p.kind}${p.header ? 'H' : ''}@${p.dts}`);
    assert.deepEqual(got, ['videoH@0', 'audioH@0', 'video@0', 'video@40'], 'on the player\'s own timeline, from 0');
    await tick();
    assert.equal(sink.packets().length, 4, 'packets already in the burst are not sent twice');
    s.push(video(160, false));
    await tick();
    assert.deepEqual(sink.packets().map((p) => p.dts).slice(-1), [80]);
  });

  test('players in step share one batch object (so one encoding serves them all)', async () => {
    const h = hub();
    const s = h.publish(NAME, null);
    s.push(video(0, false, true));
    s.push(video(0, true));
    const a = new RecordingSink();
    const b = new RecordingSink();
    s.subscribe(a, null);
    s.subscribe(b, null);
    await tick();
    s.push(video(40, false));
    s.push(video(80, false));
    await tick();
    assert.equal(a.batches.at(-1), b.batches.at(-1));
    assert.equal(a.batches.at(-1)!.packets.length, 2, 'two packets merged into one write');
  });

  test('a slow player is skipped to the next key frame, then dropped; others are untouched', async () => {
    const h = hub({ consumer: { maxBacklogBytes: 1000, stallTimeoutMs: 50 } });
    const s = h.publish(NAME, null);
    s.push(video(0, false, true));
    s.push(video(0, true));
    const slow = new RecordingSink();
    const fast = new RecordingSink();
    s.subscribe(slow, null);
    s.subscribe(fast, null);
    slow.pretendBacklog = 5000;
    s.push(video(40, false));
    await tick();
    slow.pretendBacklog = 0;
    s.push(video(80, false));
    await tick();
    s.push(video(120, true));
    s.push(video(160, false));
    await tick();
    const slowDts = slow.packets().filter((p) => !p.header).map((p) => p.dts);
    assert.deepEqual(slowDts, [0, 120, 160], 'resumed at the key frame after the overflow');
    assert.deepEqual(fast.packets().filter((p) => !p.header).map((p) => p.dts), [0, 40, 80, 120, 160]);

    slow.pretendBacklog = 5000;
    s.push(video(200, false));
    await tick();
    await new Promise((r) => setTimeout(r, 80));
    s.push(video(240, false));
    await tick();
    assert.equal(slow.endedWith, 'slow', 'stalled past the timeout: dropped');
    assert.equal(s.playerCount, 1);
    assert.equal(fast.endedWith, null);
  });

  test('a second publisher is refused unless takeover is on; unpublish ends every player', () => {
    const h = hub();
    const s = h.publish(NAME, null);
    assert.throws(() => h.publish(NAME, null), (e: unknown) => e instanceof GatewayError && e.status === 409);
    const sink = new RecordingSink();
    s.subscribe(sink, null);
    s.end();
    assert.equal(sink.endedWith, 'unpublished');
    assert.equal(h.find(NAME), undefined);
    const again = h.publish(NAME, null);
    assert.notEqual(again, s, 'republish makes a new source');

    const t = hub({}, true);
    const first = t.publish(NAME, null);
    const second = t.publish(NAME, null);
    assert.ok(first.ended);
    assert.equal(t.find(NAME), second);
  });

  test('a GOP larger than the cache bound is not kept; joiners wait for the next key frame', async () => {
    const h = hub({ gopCacheMaxBytes: 2500 });
    const s = h.publish(NAME, null);
    s.push(video(0, false, true));
    s.push(video(0, true));
    s.push(video(40, false));
    s.push(video(80, false)); // 3000 bytes: over the bound
    await tick();
    const sink = new RecordingSink();
    s.subscribe(sink, null);
    assert.deepEqual(sink.packets().map((p) => p.header), [true], 'headers only');
    s.push(video(120, false));
    s.push(video(160, true));
    await tick();
    assert.deepEqual(sink.packets().filter((p) => !p.header).map((p) => p.dts), [0], 'its timeline starts at that key frame');
  });

  test('with a merged-write window, players are flushed at staggered times and each packet arrives once, within one window', async () => {
    const WINDOW = 80;
    const h = hub({ mwLatencyMs: WINDOW });
    const s = h.publish(NAME, null);
    s.push(video(0, false, true));
    s.push(video(0, true));
    const sinks = Array.from({ length: 8 }, () => new RecordingSink());
    /** Per sink: when each write came, and when each packet (by dts) arrived. */
    const arrivals = sinks.map(() => [] as number[]);
    const deliveredAt = new Map<string, number>();
    for (const [i, sink] of sinks.entries()) {
      const write = sink.write.bind(sink);
      sink.write = (b: Batch, origin: number) => {
        const now = performance.now();
        arrivals[i].push(now);
        for (const p of b.packets) deliveredAt.set(`${i}@${p.dts}`, now);
        write(b, origin);
      };
      s.subscribe(sink, null);
    }
    const pushedAt = new Map<number, number>();
    for (let dts = 40; dts <= 400; dts += 40) {
      pushedAt.set(dts, performance.now());
      s.push(video(dts, false));
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, WINDOW * 2));
    for (const sink of sinks) {
      assert.deepEqual(sink.packets().map((p) => p.dts), [0, 0, ...pushedAt.keys()], 'every packet once, in order');
    }
    let worst = 0;
    for (const [key, t] of deliveredAt) {
      const sent = pushedAt.get(Number(key.split('@')[1]));
      if (sent !== undefined) worst = Math.max(worst, t - sent);
    }
    // One window, plus slack for a busy machine's timers.
    assert.ok(worst < WINDOW + 60, `a packet waited ${worst.toFixed(1)} ms with a ${WINDOW} ms window`);
    // One shared timer would write to all eight in the same tick: their first flushes coincide.
    const firsts = arrivals.map((a) => a[1]).sort((a, b) => a - b);
    assert.ok(firsts[firsts.length - 1] - firsts[0] >= WINDOW / 4, `first flushes spread over ${(firsts[firsts.length - 1] - firsts[0]).toFixed(1)} ms`);
  });
});

test('a client is listed under the id its access grant gave it, or a new one when that id is taken or absent', () => {
  const h = hub();
  const init = { type: 'rtmp-play', ip: '127.0.0.1', name: { vhost: '__defaultVhost__', app: 'live', stream: 's' }, url: '/live/s', publish: false, kick: () => {} };
  const first = new CountingClient(h, { ...init, id: 'hook1234' });
  assert.equal(first.id, 'hook1234');
  h.addClient(first);
  // One RTMP connection that publishes and plays is one hook client: its second role gets an id of its own.
  const second = new CountingClient(h, { ...init, id: 'hook1234' });
  assert.notEqual(second.id, 'hook1234');
  h.addClient(second);
  assert.equal(h.client('hook1234'), first);
  assert.equal(h.client(second.id), second);
  assert.notEqual(new CountingClient(h, { ...init, id: '' }).id, '');
  assert.notEqual(new CountingClient(h, init).id, undefined);
});
