import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliGateway, REPO_ROOT, sleep } from '../helpers/proc.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** The gateway's conf with the access log as given: HTTP only, no RTMP. */
const conf = (accessLog: string) => `listen off;
http_server { enabled on; listen 127.0.0.1:0; dir ./public; https { enabled off; } }
${accessLog}
`;

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: keepAlive }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** Polls `file` until `pred` holds; the lines at that moment, or an error after `ms`. */
async function waitFile(file: string, pred: (l: string[]) => boolean, ms: number): Promise<string[]> {
  const until = Date.now() + ms;
  for (;;) {
    const l = lines(file);
    if (pred(l)) return l;
    if (Date.now() > until) throw new Error(`${file}: condition not met in ${ms} ms; it has ${l.length} lines`);
    await sleep(25);
  }
}

test('a log file with buffer= and flush=: lines arrive within the flush time, one per request, in combined format', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-alog-'));
  const file = join(dir, 'access.log');
  const gw = new CliGateway(conf(`access_log combined ${file} buffer=64k flush=300ms;`));
  t.after(() => gw.kill());
  const port = await gw.port();
  for (let i = 0; i < 5; i++) assert.equal(await get(port, `/?n=${i}`), 200);
  // Five short lines are far below the 64 KiB buffer: only the flush timer writes them.
  const got = await waitFile(file, (l) => l.length >= 5, 1500);
  assert.equal(got.length, 5);
  assert.match(got[4], /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/\?n=4 HTTP\/1\.1" 200 \d+ "-" "-" \d+\.\d{3}$/);
  assert.ok(!gw.lines.some((l) => l.text.includes('GET /?n=')), 'access lines go to the file, not stdout');
});

test('SIGTERM loses no line: a long flush time and a large buffer still write everything on exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-alog-'));
  const file = join(dir, 'access.log');
  const gw = new CliGateway(conf(`access_log json ${file} buffer=16m flush=60s;`));
  t.after(() => gw.kill());
  const port = await gw.port();
  for (let i = 0; i < 300; i++) await get(port, `/?n=${i}`);
  assert.equal(lines(file).length, 0, 'nothing is written before the buffer fills or the minute passes');
  keepAlive.destroy();
  gw.signal('SIGTERM');
  const exit = await gw.exited;
  assert.equal(exit.code, 0);
  const got = lines(file).map((l) => JSON.parse(l) as { url: string; status: number });
  assert.equal(got.length, 300);
  assert.deepEqual(got.map((x) => x.url), Array.from({ length: 300 }, (_, i) => `/?n=${i}`), 'every line, in order');
});

test('SIGUSR1 reopens the file by name after logrotate moved it; SIGHUP with the same file keeps logging', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-alog-'));
  const file = join(dir, 'access.log');
  const text = conf(`access_log combined ${file} flush=50ms;`);
  const gw = new CliGateway(text);
  t.after(() => gw.kill());
  const port = await gw.port();
  await get(port, '/?before');
  await waitFile(file, (l) => l.some((x) => x.includes('/?before')), 2000);
  renameSync(file, `${file}.1`);
  await get(port, '/?moved');
  await waitFile(`${file}.1`, (l) => l.some((x) => x.includes('/?moved')), 2000);
  assert.equal(existsSync(file), false, 'until told, the gateway keeps writing the file it has open');
  gw.signal('SIGUSR1');
  await sleep(200);
  await get(port, '/?after');
  const now = await waitFile(file, (l) => l.some((x) => x.includes('/?after')), 2000);
  assert.equal(now.length, 1, 'the new file has only what came after the reopen');
  assert.equal(lines(`${file}.1`).length, 2);
  gw.signal('SIGHUP');
  await gw.waitLine(/reload: .* applied/);
  await get(port, '/?reloaded');
  await waitFile(file, (l) => l.some((x) => x.includes('/?reloaded')), 2000);
});

test('a stdout pipe nobody reads: answers keep coming, lines past the bound are dropped and counted on /metrics', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-alog-'));
  const cfile = join(dir, 'streamgate.conf');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(cfile, conf('access_log combined;'));
  const child = spawn(process.execPath, [CLI, '-c', cfile], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  // Learn the port from the first lines, then stop reading stdout: the pipe fills (64 KiB) and stays full.
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no listening line: ${text}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening on .*:(\d+) \(http\)/.exec(text);
      if (m) {
        clearTimeout(timer);
        child.stdout!.pause();
        resolve(Number(m[1]));
      }
    });
  });
  const pad = 'x'.repeat(2000);
  // ~2.1 KB a line: 1,500 requests are about 3 MiB of lines, past the pipe and the 1 MiB held in memory.
  const deadline = Date.now() + 60_000;
  let answered = 0;
  for (let i = 0; i < 1500 && Date.now() < deadline; i++) {
    assert.equal(await get(port, `/?${pad}${i}`), 200);
    answered++;
  }
  assert.equal(answered, 1500, 'every request answered although nobody reads the log');
  const metrics = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: keepAlive }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const dropped = Number(/^streamgate_access_log_dropped_total (\d+)$/m.exec(metrics)?.[1] ?? NaN);
  assert.ok(dropped > 0, `lines were dropped, and counted (${dropped})`);
  keepAlive.destroy();
});

test('a keep-alive client repeating its heads: one exact line per answer from the front door, long heads and secrets too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-alog-'));
  const file = join(dir, 'access.log');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(join(dir, 'www'));
  writeFileSync(join(dir, 'www', 'a.m3u8'), '#EXTM3U\n');
  const gw = new CliGateway(`listen off;
http_server { enabled on; listen 127.0.0.1:0; dir ${join(dir, 'www')}; https { enabled off; } }
access_log combined ${file} flush=50ms;
`);
  t.after(() => gw.kill());
  const port = await gw.port();
  // Past the size up to which a head's line pieces are kept with it: those are made per request.
  const longAgent = `player/1 ${'é'.repeat(700)}`;
  const sent: { path: string; agent: string; status: number }[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const one = (path: string, ua: string) => new Promise<void>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent, headers: { 'User-Agent': ua } }, (res) => {
      res.resume();
      res.on('end', () => {
        sent.push({ path, agent: ua, status: res.statusCode ?? 0 });
        resolve();
      });
    }).on('error', reject);
  });
  for (let i = 0; i < 3; i++) await one('/a.m3u8', 'player/1');
  for (let i = 0; i < 3; i++) await one('/a.m3u8', longAgent);
  for (let i = 0; i < 2; i++) await one('/a.m3u8?token=s3cr3t&x=1', 'player/1');
  const got = await waitFile(file, (l) => l.length >= sent.length, 3000);
  assert.equal(got.length, sent.length);
  for (const [i, s] of sent.entries()) {
    const m = /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET (\S+) HTTP\/1\.1" (\d{3}) (\d+) "-" "(.*)" \d+\.\d{3}$/.exec(got[i]);
    assert.ok(m, got[i]);
    assert.deepEqual([m[1], Number(m[2]), Number(m[3]), m[4]], [s.path.replace('s3cr3t', '***'), 200, 8, s.agent], `line ${i}`);
  }
  assert.ok(!readFileSync(file, 'utf8').includes('s3cr3t'), 'the token is not written');
});
