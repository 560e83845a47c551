import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, track } from '../helpers/proc.js';

/**
 * What a user gets from `npm install -g streamgate-x.y.z.tgz` (or from git, through `prepare`):
 * the tarball `npm pack` makes, installed into an empty prefix, gives a `streamgate` command that
 * checks a config, and that serves the shipped pages when started from any directory.
 */

const run = promisify(execFile);
/** npm fetches the dependencies' metadata from the registry unless its cache has them (CI's does, after `npm ci`). */
const INSTALL_TIMEOUT_MS = 300_000;

describe('npm pack → npm install -g → streamgate', { timeout: 420_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'sg-pack-'));
  const prefix = join(work, 'prefix');
  const bin = join(prefix, 'bin', 'streamgate');
  after(() => rmSync(work, { recursive: true, force: true }));

  test('the tarball holds the compiled gateway and its pages, not the tests; installed, `streamgate -t` passes', async () => {
    // The tree was just built by `npm test`'s pretest: --ignore-scripts keeps `prepare` from
    // recompiling dist/src under the feet of the test files running beside this one.
    await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: REPO_ROOT, timeout: 60_000 });
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    assert.ok(tgz, 'npm pack wrote a tarball');
    const { stdout: listing } = await run('tar', ['-tzf', join(work, tgz)]);
    const files = listing.split('\n');
    for (const f of ['package/bin/streamgate.js', 'package/dist/src/cli.js', 'package/config/streamgate.conf', 'package/www/players/index.html', 'package/native/sendfile.c', 'package/binding.gyp']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    assert.ok(!files.some((f) => f.startsWith('package/dist/test/') || f.startsWith('package/src/') || f.endsWith('.map')), 'no tests, sources or maps');

    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(work, tgz)], { cwd: work, timeout: INSTALL_TIMEOUT_MS });
    const elsewhere = mkdtempSync(join(work, 'cwd-'));
    const t = await run(bin, ['-t'], { cwd: elsewhere });
    assert.match(t.stdout, /config file \(built-in defaults\) test is successful/);
    const shipped = join(prefix, 'lib', 'node_modules', 'streamgate', 'config', 'streamgate.conf');
    const t2 = await run(bin, ['-t', '-c', shipped], { cwd: elsewhere });
    assert.match(t2.stdout, /syntax is ok/);
    const v = await run(bin, ['-v']);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  });

  test('the installed command, started from another directory, serves the shipped players page', async () => {
    const cwd = mkdtempSync(join(work, 'run-'));
    const child = track(spawn(bin, [], {
      cwd,
      env: { ...process.env, SRS_LISTEN: 'off', SRS_HTTP_SERVER_LISTEN: '127.0.0.1:0', SRS_HTTP_SERVER_HTTPS_ENABLED: 'off' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    try {
      let out = '';
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 20_000);
        const onData = (d: Buffer) => {
          out += d.toString();
          const m = /listening on \S+:(\d+) \(http\)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      // The shebang's `env -S` hands node its options: the young generation as on Node 20 (README, "Memory on Node 24").
      assert.ok(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').includes('--max-semi-space-size=16'), 'node runs with --max-semi-space-size=16');
      const r = await fetch(`http://127.0.0.1:${port}/players/`);
      assert.equal(r.status, 200);
      assert.match(await r.text(), /<script type="module" src="players\.js">/);
      const lib = await fetch(`http://127.0.0.1:${port}/players/vendor/hls.js`);
      assert.equal(lib.status, 200, 'hls.js comes from the installed dependencies');
      await lib.arrayBuffer();
    } finally {
      child.kill('SIGTERM');
    }
  });
});
