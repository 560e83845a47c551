import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentRequests } from '../../../src/http/h2/request.js';
import type { FastRequest } from '../../../src/http/frontdoor.js';

function req(url: string, more: Partial<FastRequest> = {}): FastRequest {
  return { method: 'GET', url, host: 'h.test', origin: false, referer: '', agent: 'player/1', ip: '127.0.0.1', httpVersion: '2.0', head: '', memo: null, ...more };
}

test('an equal request comes back as the kept object, memo and all; any differing field makes it another', () => {
  const recent = new RecentRequests();
  const first = recent.same(req('/live/a.m3u8'));
  first.memo = { routed: true };
  const again = recent.same(req('/live/a.m3u8'));
  assert.equal(again, first);
  assert.deepEqual(again.memo, { routed: true });
  for (const other of [
    req('/live/b.m3u8'), req('/live/a.m3u8', { method: 'HEAD' }), req('/live/a.m3u8', { host: 'other.test' }), req('/live/a.m3u8', { origin: true }),
    req('/live/a.m3u8', { agent: 'player/2' }), req('/live/a.m3u8', { referer: 'https://r.test/' }),
  ]) {
    const got = new RecentRequests();
    got.same(req('/live/a.m3u8'));
    assert.equal(got.same(other), other, JSON.stringify(other));
    assert.equal(other.memo, null);
  }
});

test('it keeps the last 4, and nothing over 2,048 characters', () => {
  const recent = new RecentRequests();
  const kept = [1, 2, 3, 4, 5].map((i) => recent.same(req(`/s${i}.ts`)));
  // The 5th pushed out the 1st; the 2nd to 5th are still the kept objects.
  assert.notEqual(recent.same(req('/s1.ts')), kept[0]);
  const big = req('/big.ts', { agent: 'x'.repeat(2100) });
  assert.equal(recent.same(big), big);
  assert.notEqual(recent.same(req('/big.ts', { agent: 'x'.repeat(2100) })), big, 'a request past the bound is never kept');
  // /s1.ts (just now) replaced /s2.ts; /s3.ts … /s5.ts are still kept.
  for (const i of [2, 3, 4]) assert.equal(recent.same(req(`/s${i + 1}.ts`)), kept[i]);
});
