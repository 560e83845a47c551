import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { allows, HookCaller, MAX_HOOKS_IN_FLIGHT } from '../../../src/auth/hooks.js';
import { HlsGrants, MAX_HLS_GRANTS } from '../../../src/auth/hls-grants.js';
import { MAX_TOKEN_BYTES, TokenChecker } from '../../../src/auth/token.js';
import { defaultVhostAccess, type HooksConfig } from '../../../src/auth/types.js';
import { memoryLogger } from '../../../src/log.js';
import type { Grant } from '../../../src/auth/policy.js';

test('a hook allows only on 0 or {"code":0}', () => {
  for (const ok of ['0', ' 0\n', '{"code":0}', '{"code":0,"data":{}}']) assert.equal(allows(ok), true, ok);
  for (const no of ['', '1', '{"code":1}', '{"code":"0"}', 'ok', 'null', '[0]', '{}']) assert.equal(allows(no), false, no);
});

test(`hook calls past ${MAX_HOOKS_IN_FLIGHT} in flight are denied at once; one key's calls run in order`, async () => {
  const held: http.ServerResponse[] = [];
  const order: string[] = [];
  let holding = true;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const b = JSON.parse(body);
      order.push(`${b.stream}:${b.action}`);
      if (b.stream === 'ordered') return void setTimeout(() => res.end('0'), b.action === 'on_publish' ? 300 : 0);
      if (holding) held.push(res);
      else res.end('0');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { log, lines } = memoryLogger();
  const caller = new HookCaller(log);
  const cfg: HooksConfig = { ...defaultVhostAccess().hooks, enabled: true, timeoutMs: 10_000 };
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
  cfg.urls = { ...cfg.urls, on_publish: [url], on_unpublish: [url] };
  try {
    // In order per key: the unpublish waits for its slow publish.
    const first = caller.call(cfg, 'on_publish', 'k-ordered', { stream: 'ordered', action: 'on_publish' });
    const second = caller.call(cfg, 'on_unpublish', 'k-ordered', { stream: 'ordered', action: 'on_unpublish' });
    assert.deepEqual(await Promise.all([first, second]), [true, true]);
    assert.deepEqual(order, ['ordered:on_publish', 'ordered:on_unpublish']);

    const calls = Array.from({ length: MAX_HOOKS_IN_FLIGHT + 20 }, (_, i) => caller.call(cfg, 'on_publish', `k${i}`, { stream: `s${i}`, action: 'on_publish' }));
    const over = await Promise.race([Promise.all(calls.slice(MAX_HOOKS_IN_FLIGHT)), new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
    assert.deepEqual(over, Array(20).fill(false), 'the calls past the bound are denied without waiting');
    // Every call within the bound reaches the hook (bounded wait), and none past it.
    for (let i = 0; i < 100 && held.length < MAX_HOOKS_IN_FLIGHT; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(held.length, MAX_HOOKS_IN_FLIGHT, 'requests reaching the hook');
    assert.ok(lines.some((l) => l.includes('hook calls already in flight')));
    holding = false;
    for (const r of held.splice(0)) r.end('0');
    const rest = await Promise.all(calls.slice(0, MAX_HOOKS_IN_FLIGHT));
    assert.ok(rest.every((x) => x === true));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test(`HLS sessions past ${MAX_HLS_GRANTS} are checked but not remembered`, async () => {
  let ended = 0;
  const grant = (): Grant => ({ ok: true, clientId: 'c', end: () => void ended++ });
  const grants = new HlsGrants(async () => grant());
  const req = { action: 'play' as const, name: { vhost: 'v', app: 'a', stream: 's' }, ip: '', query: new URLSearchParams(), bearer: null, tcUrl: '', pageUrl: '', protocol: 'HLS' };
  for (let i = 0; i < MAX_HLS_GRANTS + 5; i++) await grants.check(`k${i}`, req);
  assert.equal(grants.size, MAX_HLS_GRANTS);
  assert.equal(ended, 5, 'the grants not remembered are ended at once (their on_stop is sent)');
  grants.close();
  assert.equal(ended, MAX_HLS_GRANTS + 5);
});

test(`a token over ${MAX_TOKEN_BYTES} bytes is refused unread`, async () => {
  const t = new TokenChecker({ enabled: true, require: { publish: true, play: true }, secret: 's', jwks: null });
  const why = await t.check('a'.repeat(MAX_TOKEN_BYTES + 1), 'play', { vhost: 'v', app: 'a', stream: 's' });
  assert.match(why ?? '', /longer than/);
});
