import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
});
