import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { track } from '../helpers/proc.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { h2Request, h2Session, rawGet } from './site.js';

/**
 * The command line as an operator meets it: `streamgate -t -c FILE`, the README's start command
 * on the shipped config, bind failures, and what the first page says.
 */

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(REPO, 'dist', 'src', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = track(spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function conf(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'sg-t-')), 'test.conf');
  writeFileSync(file, text);
  return file;
}

async function freePort(): Promise<net.Server> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

describe('the command line', () => {
  test('-t -c: a good file passes with SRS\'s wording and exit 0', async () => {
    for (const shipped of ['config/streamgate.conf', 'config/production.conf', 'config/srs-front.conf']) {
      const r = await cli(['-t', '-c', shipped]);
      assert.equal(r.code, 0, `${shipped}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`the config file ${shipped} syntax is ok`));
      assert.match(r.stdout, new RegExp(`config file ${shipped} test is successful`));
    }
  });

  test('-t -c: a bad file names file:line and what was expected, exit 1', async () => {
    const file = conf('listen off;\nhttp_server {\n    enabled on;\n    lisen 8080;\n}\n');
    const r = await cli(['-t', '-c', file]);
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${file}:4`), r.stderr);
    assert.match(r.stderr, /lisen/);
    assert.match(r.stderr, /test failed/);
    const missing = await cli(['-t', '-c', join(tmpdir(), 'no-such-streamgate.conf')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no-such-streamgate\.conf/);
  });

  test('a port in use: one line naming the port and the fix, nothing left listening, exit 1', async () => {
    const busy = await freePort();
    const probe = await freePort();
    const httpPort = portOf(probe);
    probe.close();
    try {
      // HTTP binds first, HTTPS fails: the HTTP listener must be let go again (all or none).
      const file = conf(`listen off;
        http_server { listen 127.0.0.1:${httpPort}; dir ./public; https { enabled on; listen 127.0.0.1:${portOf(busy)}; } }`);
      const r = await cli(['-c', file], { cwd: mkdtempSync(join(tmpdir(), 'sg-cwd-')) });
      assert.equal(r.code, 1);
      const line = r.stderr.trim().split('\n').filter((l) => l.includes('cannot listen'));
      assert.equal(line.length, 1, r.stderr);
      assert.match(line[0], new RegExp(`127\\.0\\.0\\.1:${portOf(busy)}.*already in use.*http_server\\.https\\.listen`));
      assert.doesNotMatch(r.stdout + r.stderr, /listening on/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      // The HTTP port is free again.
      const again = net.createServer().listen(httpPort, '127.0.0.1');
      await once(again, 'listening');
      again.close();
    } finally {
      busy.close();
    }
  });

  test('the shipped config starts: welcome page on HTTP and HTTPS (HTTP/2), a 0600 self-signed key, one log line', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sg-start-'));
    const child = track(spawn(process.execPath, [CLI, '-c', join(REPO, 'config', 'streamgate.conf')], {
      cwd,
      // The shipped ports, moved to free ones the way an operator would: SRS's environment overrides.
      env: { ...process.env, SRS_LISTEN: 'off', SRS_HTTP_SERVER_LISTEN: '127.0.0.1:0', SRS_HTTP_SERVER_HTTPS_LISTEN: '127.0.0.1:0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    try {
      const deadline = Date.now() + 10_000;
      while (!/started with/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, /started with/, out);
      const http = Number(/listening on 127\.0\.0\.1:(\d+) \(http\)/.exec(out)![1]);
      const https = Number(/listening on 127\.0\.0\.1:(\d+) \(https\)/.exec(out)![1]);
      assert.equal(out.split('\n').filter((l) => /generated a self-signed certificate/.test(l)).length, 1, out);
      assert.equal(statSync(join(cwd, 'conf', 'server.key')).mode & 0o777, 0o600);

      const page = await rawGet(http, '/');
      assert.equal(page.status, 200);
      assert.match(page.headers['content-type'], /text\/html/);
      const html = page.body.toString();
      assert.match(html, /streamgate <span id="version">\d+\.\d+\.\d+/);
      assert.match(html, /href="\/console\/"/);
      assert.match(html, /href="\/players\/"/);

      const session = await h2Session(https);
      try {
        const r = await h2Request(session, { ':path': '/' });
        assert.equal(r.status, 200);
        assert.match(r.body.toString(), /href="\/players\/"/);
      } finally {
        session.close();
      }
    } finally {
      child.kill('SIGTERM');
      await once(child, 'close');
    }
  });
});
