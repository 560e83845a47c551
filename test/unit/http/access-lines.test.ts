import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineBatch, skipBytes } from '../../../src/http/access-batch.js';
import { ClfClock, CombinedPieces, combinedLine } from '../../../src/http/access-combined.js';
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

test('combined lines written as bytes from a head\'s pieces read exactly as the string lines do', () => {
  const clock = new ClfClock();
  const heads: Partial<AccessEntry>[] = [
    {}, { referer: 'http://x/ü', agent: 'Mozilla/5.0 ✓ 😀' }, { url: '/live/a.flv?token=abc&x=1&secret=s3' }, { method: 'HEAD', httpVersion: '2.0', ip: '::1' },
  ];
  const answers: Partial<AccessEntry>[] = [
    { status: 200, bytes: 1024, ms: 0.2 }, { status: 404, bytes: 0, ms: 12.6 }, { status: 200, bytes: 1024, ms: 999.4 },
    { status: 206, bytes: 2 ** 33, ms: 1500 }, { status: 499, bytes: 7, ms: 61_234.7 }, { status: 200, bytes: 1024, ms: 0 },
  ];
  for (const h of heads) {
    const p = new CombinedPieces(entry(h));
    for (const a of answers) {
      const e = entry({ ...h, ...a });
      // The string line takes the time as it is written: compare within one second, retrying at its edge.
      for (;;) {
        const now = Date.now();
        const buf = Buffer.alloc(p.max + 8, 0x7e);
        const end = p.write(buf, 4, clock.at(now), e.status, e.bytes, e.ms);
        const text = formatAccess('combined', e);
        if (Math.floor(Date.now() / 1000) !== Math.floor(now / 1000)) continue;
        assert.ok(end - 4 <= p.max, 'within the room it asks for');
        assert.equal(buf.toString('utf8', 4, end), `${text}\n`, JSON.stringify(e));
        assert.equal(combinedLine(p, clock, e.status, e.bytes, e.ms), text);
        assert.ok(buf.subarray(0, 4).every((b) => b === 0x7e) && buf[end] === 0x7e, 'nothing written outside the line');
        break;
      }
    }
  }
  assert.doesNotMatch(combinedLine(new CombinedPieces(entry(heads[2])), clock, 200, 1, 1), /abc|s3/);
});

test('a remembered line is remade when the second changes', () => {
  const clock = new ClfClock();
  const p = new CombinedPieces(entry());
  const a = combinedLine(p, clock.at(Date.UTC(2026, 11, 6, 8, 0, 0, 500)), 200, 1024, 0);
  const b = combinedLine(p, clock.at(Date.UTC(2026, 11, 6, 8, 0, 1, 0)), 200, 1024, 0);
  assert.match(a, /\[06\/Dec\/2026:08:00:00 \+0000\]/);
  assert.match(b, /\[06\/Dec\/2026:08:00:01 \+0000\]/);
});

test('a line batch gives a line longer than a chunk a buffer of its own through reserve() too', () => {
  const b = new LineBatch(16 * 1024);
  const long = Buffer.alloc(40_000, 0x4c);
  for (const line of [Buffer.from('a'), long, Buffer.from('b')]) {
    const buf = b.reserve(line.length + 1);
    buf.set(line, b.used);
    buf[b.used + line.length] = 0x0a;
    b.commit(b.used + line.length + 1);
  }
  const { data, lines } = b.take();
  assert.equal(lines, 3);
  assert.deepEqual(data.map((c) => c.length), [2, 40_001, 2]);
  assert.equal(Buffer.concat(data).toString(), `a\n${long.toString()}\nb\n`);
});
