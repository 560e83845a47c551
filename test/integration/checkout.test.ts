import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/proc.js';

/**
 * A newcomer runs `npm test` on a machine without the Debian packages: the first step says what is
 * missing and what to run, on one line, at once, instead of a test hanging on a program that
 * never starts.
 */

const PREFLIGHT = join(REPO_ROOT, '.ci', 'preflight.mjs');

test('without ffmpeg, curl or chromium on PATH, the pretest check fails at once with one line naming them and bash .ci/run', () => {
  const bin = mkdtempSync(join(tmpdir(), 'sg-path-'));
  try {
    // Only node itself: everything the suite drives is hidden.
    symlinkSync(process.execPath, join(bin, 'node'));
    const env = { PATH: bin, HOME: process.env.HOME ?? '/' };
    const started = performance.now();
    const r = spawnSync(join(bin, 'node'), [PREFLIGHT], { env, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.ok(performance.now() - started < 20_000);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^npm test: missing ffmpeg, ffprobe \(ffmpeg\), curl, chromium, /);
    assert.match(lines[0], /run `bash \.ci\/run`/);
    assert.equal(r.stdout, '');
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});

test('with the packages installed the check passes silently', () => {
  const r = spawnSync(process.execPath, [PREFLIGHT], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr + r.stdout, '');
});
