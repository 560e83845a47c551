import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { track } from '../helpers/proc.js';

/**
 * A file in the web root that the gateway's user may not read (a key left 0600 by root, say) is a
 * 403 and one log line naming it, as NGINX answers EACCES; not a 500, not a hang. Root reads every
 * file, so under root the gateway is started as `nobody`; otherwise the file is made unreadable
 * to the user running the test.
 */

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const NOBODY = 65534;

/**
 * `nobody` must reach the gateway's own code: a checkout under a 0700 directory (mktemp -d makes
 * one) would stop it before the file under test does. The directories above the code that others
 * may not enter are opened for entering (o+x, no listing) for the test and put back after it.
 */
function letOthersEnter(path: string): () => void {
  const changed: [string, number][] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001);
      changed.push([d, mode]);
    }
    if (d === dirname(d)) break;
  }
  return () => {
    for (const [d, mode] of changed) chmodSync(d, mode);
  };
}

test('a file the gateway may not read is 403 with a log line; its neighbours are served', async () => {
  const asRoot = process.getuid?.() === 0;
  // The node binary too: CI's second run uses one installed under a 0700 temporary directory.
  const reopen = asRoot ? [letOthersEnter(CLI), letOthersEnter(realpathSync(process.execPath))] : [];
  const restore = () => {
    for (const r of reopen) r();
  };
  const dir = mkdtempSync(join(tmpdir(), 'sg-perm-'));
  chmodSync(dir, 0o755);
  const root = join(dir, 'www');
  const conf = join(dir, 'x.conf');
  try {
    mkdirSync(root, { mode: 0o755 });
    writeFileSync(join(root, 'ok.txt'), 'fine\n', { mode: 0o644 });
    writeFileSync(join(root, 'secret.txt'), 'private\n', { mode: 0o600 });
    if (!asRoot) chmodSync(join(root, 'secret.txt'), 0o000);
    writeFileSync(conf, `listen off; console_dir off; players_dir off; access_log off;
      http_server { listen 127.0.0.1:0; dir ${root}; https { enabled off; } }\n`, { mode: 0o644 });
    const child = track(spawn(process.execPath, [CLI, '-c', conf], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
    }));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 20_000);
        const check = () => {
          const m = /listening on \S+:(\d+) \(http\)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        };
        child.stdout.on('data', check);
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      const ok = await fetch(`http://127.0.0.1:${port}/ok.txt`);
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), 'fine\n');
      for (let i = 0; i < 2; i++) {
        const denied = await fetch(`http://127.0.0.1:${port}/secret.txt`);
        assert.equal(denied.status, 403, 'EACCES is Forbidden, twice (the cached answer too)');
        assert.doesNotMatch(await denied.text(), /private/);
      }
      const until = Date.now() + 5000;
      while (!/secret\.txt: permission denied \(EACCES\): answered 403/.test(out) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /\[warn\] .*secret\.txt: permission denied \(EACCES\): answered 403/);
    } finally {
      child.kill('SIGKILL');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    restore();
  }
});
