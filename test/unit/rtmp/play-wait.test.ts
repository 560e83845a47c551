import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../../../src/live/hub.js';
import { DEFAULT_SOURCE_OPTIONS, type Source } from '../../../src/live/source.js';
import { PlayWaitRoom } from '../../../src/ingest/rtmp/play-wait.js';

const V = '__defaultVhost__';
const name = (stream: string) => ({ vhost: V, app: 'live', stream });
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('players wait for their stream: woken by its publish (others keep waiting), or timed out; caps per stream and in all; no timer left behind', async () => {
  const hub = new Hub({ sourceOptions: () => DEFAULT_SOURCE_OPTIONS, takeover: () => false, maxStreams: 0 });
  const room = new PlayWaitRoom(hub, 2, 3);
  const t0 = timers();
  const woken: string[] = [];
  const timedOut: string[] = [];
  const wait = (stream: string, ms: number, who: string) =>
    room.wait(name(stream), ms, (s: Source) => woken.push(`${who}:${s.name.stream}`), () => timedOut.push(who));
  assert.ok(wait('a', 10_000, 'p1'));
  assert.ok(wait('a', 10_000, 'p2'));
  assert.equal(wait('a', 10_000, 'p3'), null, 'a third player for one stream is refused');
  assert.ok(wait('b', 50, 'q1'));
  assert.equal(wait('c', 10_000, 'r1'), null, 'a fourth player in all is refused');
  assert.equal(room.size, 3);
  assert.equal(timers() - t0, 3, 'one timer per waiting player');

  hub.publish(name('a'), null);
  assert.deepEqual(woken, [], 'woken after the publisher has started, not inside its publish call');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(woken.sort(), ['p1:a', 'p2:a']);
  assert.equal(room.size, 1, 'b still waits');
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(timedOut, ['q1']);
  assert.equal(room.size, 0);
  assert.equal(timers() - t0, 0, 'no timer left');

  // A player that leaves while waiting frees its place and its timer at once.
  const cancel = wait('d', 10_000, 's1')!;
  assert.equal(timers() - t0, 1);
  cancel();
  cancel();
  assert.equal(room.size, 0);
  assert.equal(timers() - t0, 0);
  hub.publish(name('d'), null);
  await new Promise((r) => setImmediate(r));
  assert.ok(!(woken as string[]).some((w) => w.startsWith('s1')), 'a player that left is not woken');

  // Closing the room (the listener closed) drops every timer and stops listening to the hub.
  wait('e', 10_000, 't1');
  room.close();
  assert.equal(timers() - t0, 0);
  assert.equal(hub.listenerCount('publish'), 0);
});
