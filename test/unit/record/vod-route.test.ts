import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../../src/config/index.js';
import type { Proxy } from '../../../src/proxy/index.js';
import { buildTable } from '../../../src/routing/build.js';
import { decide } from '../../../src/routing/table.js';
import type { FileRoot } from '../../../src/static/fileserver.js';

/**
 * Where the routing table sends /recordings/ paths: the VOD shapes to the VOD answer when a vhost
 * records, everything else where it went before (recording files under the web root, a live app
 * named "recordings"), and nothing at all changes where nothing records.
 */

function routeOf(dvr: boolean, path: string): string {
  const cfg = loadConfigText(`http_server { listen 127.0.0.1:0; dir ./public; } vhost __defaultVhost__ { dvr { enabled ${dvr ? 'on' : 'off'}; } }`, 't.conf');
  const t = buildTable(cfg, { fileRoot: () => ({}) as FileRoot, proxy: () => ({}) as Proxy });
  return decide(t.entries, 'GET', path, '127.0.0.1').entry.name;
}

test('the VOD shapes go to the recordings entry where a vhost records', () => {
  for (const p of ['/recordings/live/cam.m3u8', '/recordings/a/b/cam.m3u8', '/recordings/live/cam/0123456789abcdef.mp4', '/recordings/live/cam/0123456789abcdef.flv', '/recordings/live/cam/0123456789abcdef/12.ts']) {
    assert.equal(routeOf(true, p), 'recordings', p);
    assert.notEqual(routeOf(false, p), 'recordings', `${p} without dvr`);
  }
});

test('recording files under the web root, and a live app named recordings, go where they went', () => {
  assert.equal(routeOf(true, '/recordings/live/cam.1796545098112.mp4'), 'static');
  // An .flv path asks the live origin first, as it always did (nothing live: the files answer).
  assert.equal(routeOf(true, '/recordings/live/cam/1796545098112.flv'), 'stream');
  assert.equal(routeOf(true, '/recordings/cam.flv'), 'stream');
  assert.equal(routeOf(true, '/recordings/cam.m3u8'), 'stream');
  assert.equal(routeOf(true, '/recordings/live/cam/0123456789abcdef/x.ts'), 'stream');
});
