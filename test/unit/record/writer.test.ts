import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { COALESCE_MS, QueuedFile } from '../../../src/record/writer.js';

function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sg-writer-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const size = (p: string) => statSync(p).size;

test('small appends wait up to COALESCE_MS to go out together, in order; close writes what waits at once', async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'a.flv');
    const f = new QueuedFile(path, (e) => assert.fail(e));
    await sleep(20); // opened
    const parts = Array.from({ length: 50 }, (_, i) => Buffer.from(`part ${String(i).padStart(2, '0')};`));
    const t0 = performance.now();
    for (const p of parts) assert.equal(f.write(p), true);
    await sleep(COALESCE_MS / 4);
    // (A machine that stalled past the window cannot tell; every other one must show nothing yet.)
    if (performance.now() - t0 < COALESCE_MS * 0.8) assert.equal(size(path), 0, 'nothing written before the window ends');
    await sleep(COALESCE_MS * 2);
    assert.equal(readFileSync(path).toString(), Buffer.concat(parts).toString(), 'all of it, in order, once the window ended');
    // More appends, then close before their window ends: close does not wait for it.
    assert.equal(f.write(Buffer.from('tail;')), true);
    await f.close();
    assert.ok(readFileSync(path).toString().endsWith('part 49;tail;'));
  } finally {
    t.remove();
  }
});

test('appends past 256 KiB queued go out without waiting for the window', async () => {
  const t = tempDir();
  try {
    const path = join(t.dir, 'b.flv');
    const f = new QueuedFile(path, (e) => assert.fail(e));
    await sleep(20);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) assert.equal(f.write(Buffer.alloc(64 * 1024, i)), true);
    // On disk before the window would have ended.
    while (size(path) < 256 * 1024 && performance.now() - t0 < COALESCE_MS * 0.8) await sleep(5);
    assert.ok(size(path) >= 256 * 1024, `written at once: ${size(path)} bytes on disk after ${Math.round(performance.now() - t0)} ms`);
    await f.close();
    assert.equal(size(path), 5 * 64 * 1024);
  } finally {
    t.remove();
  }
});
