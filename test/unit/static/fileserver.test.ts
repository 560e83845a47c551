import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sendfileBuilt } from '../../../src/net/sendfile.js';
import { FileRoot, type CachedBody } from '../../../src/static/fileserver.js';

describe('FileRoot: bodies the front door keeps between requests', () => {
  test('a kept body is reused only while its entry is cached and within the stat window', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-fileroot-'));
    const root = new FileRoot(dir, { direct: false });
    try {
      writeFileSync(join(dir, 'a.txt'), 'first');
      const body = (await root.fastBody('/a.txt', Date.now())) as CachedBody;
      assert.equal(body.body.toString(), 'first');
      assert.equal(root.stillFresh(body, Date.now()), true);
      // NGINX's open_file_cache_valid: past 200 ms the file is stat'ed again before reuse.
      assert.equal(root.stillFresh(body, Date.now() + 1000), false);
      // A reload that stops serving the directory closes the root: nothing it held is reused.
      root.close();
      assert.equal(root.stillFresh(body, Date.now()), false);
    } finally {
      root.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a memfd copy counts against the 64 MiB budget once it is made, not before: bodies only sent over TLS do not count twice', { skip: sendfileBuilt ? false : 'the native sendfile addon is not built' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-fileroot-'));
    const root = new FileRoot(dir, { direct: true });
    const MIB = 1024 * 1024;
    try {
      for (let i = 0; i < 48; i++) writeFileSync(join(dir, `${i}.ts`), Buffer.alloc(MIB, i));
      const bodies: CachedBody[] = [];
      for (let i = 0; i < 48; i++) {
        const b = await root.fastBody(`/${i}.ts`, Date.now());
        // Counted twice from the front door's first request, the 33rd would no longer fit in memory.
        assert.ok(b?.direct, `/${i}.ts is held in memory with a copy to make when sent`);
        bodies.push(b);
      }
      // Sending makes the copies: 48 MiB of bodies leave room for 16 MiB of copies.
      const made = bodies.map((b) => b.direct!.fdFor(288));
      assert.deepEqual(made.map((fd) => fd >= 0), [...Array(16).fill(true), ...Array(32).fill(false)]);
    } finally {
      root.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
