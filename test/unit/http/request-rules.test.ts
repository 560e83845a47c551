import { test } from 'node:test';
import assert from 'node:assert/strict';
import { badFieldValue, checkTarget, isToken, normalizePath, validHost } from '../../../src/http/request-rules.js';

test('field values: HTAB and obs-text pass, every other control character is refused', () => {
  assert.equal(badFieldValue('text/html; q=0.9\tx'), false);
  assert.equal(badFieldValue('caf\u00e9'), false);
  for (const c of [0, 1, 8, 10, 13, 0x1f, 0x7f]) assert.equal(badFieldValue(`a${String.fromCharCode(c)}b`), true, `char ${c}`);
});

test('tokens: names with spaces, colons or non-ASCII are not tokens', () => {
  assert.equal(isToken('X-Forwarded-For'), true);
  assert.equal(isToken(''), false);
  assert.equal(isToken('a b'), false);
  assert.equal(isToken('a:b'), false);
  assert.equal(isToken('na\u00efve'), false);
});

test('hosts: names, IPv4, bracketed IPv6 with ports; slashes, userinfo and spaces refused', () => {
  for (const h of ['example.com', 'example.com:8080', '127.0.0.1', '[::1]', '[::1]:443', 'a_b.local', 'x:']) assert.equal(validHost(h), true, h);
  for (const h of ['', 'a/b', 'a@b', 'a b', '[::1', '[::1]x', 'a:99999999', 'a:8o', ':80']) assert.equal(validHost(h), false, h);
});

test('dot-segments: removed as RFC 3986 §5.2.4 says, encoded dots included; climbing above / is refused', () => {
  assert.equal(normalizePath('/a/b/c'), '/a/b/c');
  assert.equal(normalizePath('/a/./b/../c'), '/a/c');
  assert.equal(normalizePath('/up/../etc/passwd'), '/etc/passwd');
  assert.equal(normalizePath('/a/%2e%2E/b'), '/b');
  assert.equal(normalizePath('/a/%2e/b'), '/a/b');
  assert.equal(normalizePath('/a/b/..'), '/a/');
  assert.equal(normalizePath('/a/.'), '/a/');
  assert.equal(normalizePath('/a/.hidden/..x'), '/a/.hidden/..x');
  assert.equal(normalizePath('/..'), null);
  assert.equal(normalizePath('/a/../../b'), null);
  assert.equal(normalizePath('/%2e%2e/x'), null);
  assert.equal(normalizePath('/a%2f..%2fb'), '/a%2f..%2fb', 'an encoded slash is not a separator');
});

test('targets: origin-form normalised, absolute-form takes its authority as Host, the rest refused', () => {
  assert.deepEqual(checkTarget('GET', '/live/a.flv?x=1', ['h:8080'], true), { ok: true, path: '/live/a.flv', query: '?x=1', host: 'h:8080' });
  assert.deepEqual(checkTarget('GET', 'http://evil.example/up/x', ['x'], true), { ok: true, path: '/up/x', query: '', host: 'evil.example' });
  assert.deepEqual(checkTarget('GET', 'http://h', [], true), { ok: true, path: '/', query: '', host: 'h' });
  assert.deepEqual(checkTarget('GET', 'http://h?q', [], true), { ok: true, path: '/', query: '?q', host: 'h' });
  assert.deepEqual(checkTarget('OPTIONS', '*', ['h'], true), { ok: true, path: '*', query: '', host: 'h' });
  assert.equal(checkTarget('GET', '*', ['h'], true).ok, false);
  assert.equal(checkTarget('GET', '/x', ['a', 'b'], true).ok, false, 'two Hosts');
  assert.equal(checkTarget('GET', '/x', [], true).ok, false, 'HTTP/1.1 without Host');
  assert.equal(checkTarget('GET', '/x', [], false).ok, true, 'HTTP/1.0 without Host');
  assert.equal(checkTarget('CONNECT', 'example.com:443', ['h'], true).ok, false);
  assert.equal(checkTarget('GET', 'http://u:p@h/x', [], true).ok, false);
  assert.equal(checkTarget('GET', '/../etc/passwd', ['h'], true).ok, false);
  assert.equal(checkTarget('GET', '/x', ['a/b'], true).ok, false);
  assert.equal(checkTarget('GET', 'ftp://h/x', ['h'], true).ok, false);
});
