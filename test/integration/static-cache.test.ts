import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeSite, startGateway, type Site, type Started } from './site.js';

/**
 * HLS written to disk by ffmpeg or SRS, served from http_server.dir behind a CDN. After a restart
 * they number segments from the start again, so the same name can hold other bytes: a cache must
 * ask again (and gets a 304 while the file is the same), never keep a segment for a year.
 */
describe('static HLS files: cache policy', () => {
  let site: Site;
  let s: Started;
  before(async () => {
    site = makeSite();
    s = await startGateway(`listen off; console_dir off; players_dir off; http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled off; } }`);
  });
  after(async () => {
    await s?.gw.close();
    site?.remove();
  });
  const url = (path: string) => `http://127.0.0.1:${s.http}${path}`;

  test('playlists and segments on disk are revalidated (no-cache), other files carry no policy', async () => {
    for (const path of ['/live.m3u8', '/seg.ts']) {
      const cc = (await fetch(url(path))).headers.get('cache-control') ?? '';
      assert.equal(cc, 'no-cache', path);
      assert.doesNotMatch(cc, /immutable/, path);
    }
    assert.equal((await fetch(url('/hello.txt'))).headers.get('cache-control'), null);
  });

  test('a segment rewritten under the same name (ffmpeg restarted): the old ETag gets the new bytes, the current one a 304', async () => {
    const first = await fetch(url('/seg.ts'));
    const etag = first.headers.get('etag')!;
    assert.ok(etag, 'an ETag to revalidate with');
    await first.arrayBuffer();
    const same = await fetch(url('/seg.ts'), { headers: { 'If-None-Match': etag } });
    assert.equal(same.status, 304);

    // The restarted muxer writes other bytes (another length) under the same name.
    const fresh = Buffer.alloc(188 * 7, 0x47);
    writeFileSync(join(site.root, 'seg.ts'), fresh);
    let r: Response | null = null;
    // The file cache notices a change within its 200 ms stat window; bounded wait.
    for (let i = 0; i < 50; i++) {
      r = await fetch(url('/seg.ts'), { headers: { 'If-None-Match': etag } });
      if (r.status === 200) break;
      await r.arrayBuffer();
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(r!.status, 200, 'the cached copy is stale: the new segment comes back');
    assert.deepEqual(Buffer.from(await r!.arrayBuffer()), fresh);
    assert.notEqual(r!.headers.get('etag'), etag);
  });
});
