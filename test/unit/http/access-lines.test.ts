import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineBatch, skipBytes } from '../../../src/http/access-batch.js';
import { type AccessEntry, formatAccess } from '../../../src/http/accesslog.js';

const entry = (over: Partial<AccessEntry> = {}): AccessEntry => ({
  route: 'static', status: 200, bytes: 1024, ms: 0.2, ip: '127.0.0.1', method: 'GET', url: '/a.m3u8', httpVersion: '1.1',
  referer: '', agent: 'curl/8', error: null, ...over,
});

test('combined lines: a line that repeats the one before differs only where its fields do', () => {
  const a = formatAccess('combined', entry());
  assert.match(a, /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/a\.m3u8 HTTP\/1\.1" 200 1024 "-" "curl\/8" 0\.000$/);
  assert.equal(formatAccess('combined', entry()), a);
  // Every field is part of what a repeated line is recognised by.
  const variants: [Partial<AccessEntry>, RegExp][] = [
    [{ ip: '10.0.0.2' }, /^10\.0\.0\.2 /], [{ method: 'HEAD' }, /"HEAD \/a/], [{ url: '/b.ts' }, /"GET \/b\.ts /],
    [{ httpVersion: '2.0' }, / HTTP\/2\.0"/], [{ status: 404 }, /" 404 1024 /], [{ bytes: 7 }, /" 200 7 /],
    [{ referer: 'http://x/' }, / "http:\/\/x\/" "curl/], [{ agent: 'ffplay' }, / "ffplay" 0\.000$/],
  ];
  for (const [over, re] of variants) {
    assert.match(formatAccess('combined', entry(over)), re, JSON.stringify(over));
    assert.equal(formatAccess('combined', entry()), a, `${JSON.stringify(over)} did not replace the remembered line`);
  }
});

test('combined lines: durations in seconds with three decimals, and secrets masked on remembered lines too', () => {
  assert.match(formatAccess('combined', entry({ ms: 0.4 })), / 0\.000$/);
  assert.match(formatAccess('combined', entry({ ms: 12.6 })), / 0\.013$/);
  assert.match(formatAccess('combined', entry({ ms: 999.4 })), / 0\.999$/);
  assert.match(formatAccess('combined', entry({ ms: 1500 })), / 1\.500$/);
  assert.match(formatAccess('combined', entry({ ms: 61_234.7 })), / 61\.235$/);
  for (let i = 0; i < 2; i++) {
    const line = formatAccess('combined', entry({ url: '/live/a.flv?token=abc&x=1&secret=s3' }));
    assert.match(line, /"GET \/live\/a\.flv\?token=\*\*\*&x=1&secret=\*\*\* HTTP/);
    assert.doesNotMatch(line, /abc|s3/);
  }
});

test('a line batch encodes lines in order across chunks, a long line in a buffer of its own', () => {
  const b = new LineBatch(16 * 1024);
  const lines: string[] = [];
  for (let i = 0; i < 500; i++) lines.push(`line ${i} ${'x'.repeat(i % 97)} é ✓`);
  lines.push('L'.repeat(40_000));
  lines.push('after the long one');
  for (const l of lines) b.add(l);
  assert.equal(b.lines, lines.length);
  const expected = Buffer.from(`${lines.join('\n')}\n`);
  assert.equal(b.bytes, expected.length);
  const { data, lines: n } = b.take();
  assert.equal(n, lines.length);
  assert.ok(data.length > 2, 'more than one chunk');
  assert.ok(data.every((c) => c.length <= 16 * 1024 || c.length === 40_001), 'chunks stay within their size');
  assert.deepEqual(Buffer.concat(data), expected);
  assert.equal(b.lines, 0);
  assert.equal(b.bytes, 0);
  assert.deepEqual(b.take().data, []);
});

test('a short write continues where it stopped', () => {
  const bufs = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')];
  for (let n = 0; n <= 8; n++) assert.equal(Buffer.concat(skipBytes(bufs, n)).toString(), 'abcdefgh'.slice(n), `after ${n}`);
});
