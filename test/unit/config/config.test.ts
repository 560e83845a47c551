import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, loadConfigText, type Config } from '../../../src/config/index.js';

/** The shipped configs, seen from dist/test/unit/config/. */
const CONFIG_DIR = fileURLToPath(new URL('../../../../config/', import.meta.url));

/** The message a user reads for a config, or null when it loads. */
function errorOf(text: string, env: NodeJS.ProcessEnv = {}): string | null {
  try {
    loadConfigText(text, 'x.conf', env);
    return null;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`);
    return err.message;
  }
}

/** A temp dir with files, for include and loadConfig(file). */
function files(entries: Record<string, string>): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sg-conf-'));
  for (const [name, text] of Object.entries(entries)) writeFileSync(join(dir, name), text);
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('config: grammar errors name file:line and what was expected', () => {
  const rows: [string, string][] = [
    ['http_server {\n  dir "./pub;\n}\n', 'x.conf:2: unterminated double-quoted string'],
    ["http_server {\n  dir './pub;\n}\n", 'x.conf:2: unterminated single-quoted string'],
    ['listen 1935;\n}\n', 'x.conf:2: unexpected "}"'],
    ['\nhttp_server {\n  listen 8080;\n', 'x.conf:2: block "http_server" opened here is never closed: expected "}"'],
    ['listen 1935', 'x.conf:1: directive "listen" is not terminated by ";"'],
    ['http_server {\n  listen 8080\n}\n', 'x.conf:3: directive "listen" is not terminated by ";"'],
    ['listen 1935;\n;\n', 'x.conf:2: unexpected ";": expected a directive name'],
    ['{ listen 1; }', 'x.conf:1: unexpected "{": expected a directive name'],
  ];
  for (const [text, message] of rows) {
    test(message, () => assert.equal(errorOf(text), message));
  }
});

describe('config: validation errors', () => {
  const rows: [string, string][] = [
    ['http_server {\n    lissten 8080;\n}', 'x.conf:2: unknown directive "lissten" in http_server'],
    ['\n\nlissten 1935;', 'x.conf:3: unknown directive "lissten" at top level'],
    ['vhost v { http_static { enabled on; mnt /x; } }', 'x.conf:1: unknown directive "mnt" in http_static'],
    ['http_server {\n listen 1;\n dir a;\n listen 2;\n}', 'x.conf:4: duplicate directive "listen" in http_server (first at x.conf:2)'],
    ['http_server { listen 8080 { } }', 'x.conf:1: "listen" takes arguments and ";", not a block'],
    ['http_server { https on; }', 'x.conf:1: "https" must be a block: expected "{"'],
    ['http_server { dir a b; }', 'x.conf:1: "dir" expects 1 argument, got 2'],
    ['http_server { listen; }', 'x.conf:1: "listen" expects 1 to 8 arguments, got 0'],
    ['vhost { }', 'x.conf:1: block "vhost" expects 1 argument (a name)'],
    ['http_server x { }', 'x.conf:1: block "http_server" takes no arguments'],
    // values
    ['http_server {\n enabled yes;\n}', 'x.conf:2: "enabled" expects on or off, got "yes"'],
    ['http_server { crossdomain 1; }', 'x.conf:1: "crossdomain" expects on or off, got "1"'],
    ['http_server { listen 70000; }', 'x.conf:1: "listen" expects a port or host:port (e.g. 8080, 127.0.0.1:8080, [::1]:8080), got "70000"'],
    ['http_server { listen abc; }', 'x.conf:1: "listen" expects a port or host:port (e.g. 8080, 127.0.0.1:8080, [::1]:8080), got "abc"'],
    ['http_server { listen example.com:80; }', 'x.conf:1: "listen" expects an IP address before the port, got "example.com"'],
    ['max_connections -1;', 'x.conf:1: "max_connections" expects an integer from 1 to 10000000, got "-1"'],
    ['limits { header_timeout 5x; }', 'x.conf:1: "header_timeout" expects a duration such as 5, 5s or 350ms, got "5x"'],
    ['limits { max_header_size 16q; }', 'x.conf:1: "max_header_size" expects a size such as 8192, 16k or 1m, got "16q"'],
    ['access_log verbose;', 'x.conf:1: "access_log" expects combined, json or off, got "verbose"'],
    ['proxy { route api http://127.0.0.1:1985; }', 'x.conf:1: "route" expects a path prefix starting with "/", got "api"'],
    ['proxy { route /api/ ftp://127.0.0.1; }', 'x.conf:1: "route" expects an http:// or https:// URL, got "ftp://127.0.0.1"'],
    ['proxy {\n route /a/ http://h;\n route /a/ http://i;\n}', 'x.conf:2: two routes for the prefix "/a/"'],
    ['vhost v { publish { allow 10.0.0.0/33; } }', 'x.conf:1: "allow" expects an IP address, a CIDR (10.0.0.0/8) or "all", got "10.0.0.0/33"'],
    ['vhost v { }\nvhost v { }', 'x.conf:2: duplicate vhost "v"'],
  ];
  for (const [text, message] of rows) {
    test(message, () => assert.equal(errorOf(text), message));
  }

  test('comments, quotes and SRS-only directives load; the ignored ones are noted', () => {
    const c = loadConfigText(`# a comment
      srs_log_tank file; # SRS's, no effect here
      http_server { dir "./my dir"; listen '127.0.0.1:0' [::1]:0; }  # trailing`, 'x.conf');
    assert.equal(c.httpServer.dir, './my dir');
    assert.deepEqual(c.httpServer.listen, [{ host: '127.0.0.1', port: 0 }, { host: '::1', port: 0 }]);
    assert.ok(c.warnings.some((n) => n === 'x.conf:2: "srs_log_tank" is accepted for SRS compatibility and has no effect in streamgate'), c.warnings.join('\n'));
  });

  test('durations, sizes and listen off', () => {
    const c = loadConfigText('listen off; limits { header_timeout 350ms; request_timeout 2m; keepalive_timeout 1.5; max_header_size 16k; max_api_body 1m; }', 'x.conf');
    assert.deepEqual(c.rtmp.listen, []);
    assert.equal(c.limits.headerTimeoutMs, 350);
    assert.equal(c.limits.requestTimeoutMs, 120_000);
    assert.equal(c.limits.keepAliveTimeoutMs, 1500, 'a bare number is seconds, as SRS writes them');
    assert.equal(c.limits.maxHeaderBytes, 16 * 1024);
    assert.equal(c.limits.maxApiBodyBytes, 1024 * 1024);
  });
});

describe('config: include', () => {
  test('an included file is read relative to the one that includes it, and its errors name it', () => {
    const f = files({
      'main.conf': 'listen off;\ninclude server.conf;\n',
      'server.conf': 'http_server {\n  listen 9999;\n}\n',
      'bad.conf': 'include broken.conf;\n',
      'broken.conf': 'http_server {\n  lissten 1;\n}\n',
      'dup.conf': 'http_server { listen 1; }\ninclude server.conf;\n',
      'missing.conf': '\n\ninclude nowhere.conf;\n',
      'loop.conf': 'include loop.conf;\n',
    });
    try {
      const c = loadConfig(join(f.dir, 'main.conf'), {});
      assert.deepEqual(c.httpServer.listen, [{ host: undefined, port: 9999 }]);
      assert.throws(() => loadConfig(join(f.dir, 'bad.conf'), {}), { message: `${join(f.dir, 'broken.conf')}:2: unknown directive "lissten" in http_server` });
      assert.throws(() => loadConfig(join(f.dir, 'dup.conf'), {}), { message: `${join(f.dir, 'server.conf')}:1: duplicate directive "http_server" at top level (first at ${join(f.dir, 'dup.conf')}:1)` });
      assert.throws(() => loadConfig(join(f.dir, 'missing.conf'), {}), { message: `${join(f.dir, 'missing.conf')}:3: include "nowhere.conf": cannot read config file (ENOENT)` });
      assert.throws(() => loadConfig(join(f.dir, 'loop.conf'), {}), /loop\.conf:1: include nested deeper than 16 \(a loop\?\)/);
      assert.throws(() => loadConfig(join(f.dir, 'absent.conf'), {}), { message: `${join(f.dir, 'absent.conf')}: cannot read config file (ENOENT)` });
    } finally {
      f.done();
    }
  });
});

describe('config: SRS environment overrides', () => {
  const base = 'http_server { listen 8080; crossdomain on; https { enabled on; listen 8088; } }';
  const load = (env: NodeJS.ProcessEnv, text = base): Config => loadConfigText(text, 'x.conf', env);

  test('SRS_HTTP_SERVER_LISTEN wins over the file, and is noted', () => {
    const c = load({ SRS_HTTP_SERVER_LISTEN: '9090' });
    assert.deepEqual(c.httpServer.listen, [{ host: undefined, port: 9090 }]);
    assert.ok(c.notes.includes('environment override SRS_HTTP_SERVER_LISTEN applied'));
    assert.deepEqual(load({ SRS_HTTP_SERVER_LISTEN: '127.0.0.1:9090 9091' }).httpServer.listen, [{ host: '127.0.0.1', port: 9090 }, { host: undefined, port: 9091 }]);
    assert.deepEqual(load({ SRS_HTTP_SERVER_LISTEN: '' }).httpServer.listen, [{ host: undefined, port: 8080 }], 'an empty value is no override');
    assert.deepEqual(load({ SRS_HTTP_SERVER_LISTEN: '9090' }, '').httpServer.listen, [{ host: undefined, port: 9090 }], 'works without the block in the file');
  });

  test('a bad value from the environment names the variable', () => {
    assert.equal(errorOf(base, { SRS_HTTP_SERVER_LISTEN: 'abc' }), 'env SRS_HTTP_SERVER_LISTEN: "listen" expects a port or host:port (e.g. 8080, 127.0.0.1:8080, [::1]:8080), got "abc"');
    assert.equal(errorOf(base, { SRS_HTTP_SERVER_DIR: 'a b' }), 'env SRS_HTTP_SERVER_DIR: "dir" expects 1 argument, got 2');
  });

  test('booleans: only "on" is true, except crossdomain, which is on unless "off"', () => {
    assert.equal(load({ SRS_HTTP_SERVER_HTTPS_ENABLED: 'off' }).httpServer.https.enabled, false);
    assert.equal(load({ SRS_HTTP_SERVER_HTTPS_ENABLED: 'true' }).httpServer.https.enabled, false);
    assert.equal(load({ SRS_HTTP_SERVER_HTTPS_ENABLED: 'on' }, 'http_server { https { enabled off; } }').httpServer.https.enabled, true);
    assert.equal(load({ SRS_HTTP_SERVER_CROSSDOMAIN: 'off' }).httpServer.crossdomain, false);
    assert.equal(load({ SRS_HTTP_SERVER_CROSSDOMAIN: 'yes' }, 'http_server { crossdomain off; }').httpServer.crossdomain, true);
  });

  test('HTTPS key and cert, and vhost keys that apply to the default vhost', () => {
    const c = load({ SRS_HTTP_SERVER_HTTPS_KEY: '/k.pem', SRS_HTTP_SERVER_HTTPS_CERT: '/c.pem', SRS_HTTP_SERVER_HTTPS_LISTEN: '4443' });
    assert.equal(c.httpServer.https.key, '/k.pem');
    assert.equal(c.httpServer.https.cert, '/c.pem');
    assert.deepEqual(c.httpServer.https.listen, [{ host: undefined, port: 4443 }]);
    const v = load({ SRS_VHOST_HTTP_STATIC_ENABLED: 'on', SRS_VHOST_HTTP_STATIC_DIR: './hls' }).vhosts.find((x) => x.name === '__defaultVhost__')!;
    assert.equal(v.httpStatic.enabled, true);
    assert.equal(v.httpStatic.dir, './hls');
    const w = load({ SRS_VHOST_HTTP_STATIC_ENABLED: 'on' }, 'vhost __defaultVhost__ { http_static { enabled off; mount /x; } }').vhosts[0];
    assert.equal(w.httpStatic.enabled, true);
    assert.equal(w.httpStatic.mount, '/x', 'the other keys of the block stay');
    assert.equal(load({ SRS_LISTEN: '19350' }).rtmp.listen[0].port, 19350);
  });
});

describe('config: the shipped files', () => {
  for (const name of ['streamgate.conf', 'production.conf', 'srs-front.conf']) {
    test(`config/${name} loads`, () => {
      const c = loadConfig(join(CONFIG_DIR, name), {});
      assert.ok(c.httpServer.listen.length > 0);
    });
  }

  test('config/streamgate.conf says what the built-in defaults are', () => {
    const strip = (c: Config) => ({ ...c, file: '', notes: [] });
    assert.deepEqual(strip(loadConfig(join(CONFIG_DIR, 'streamgate.conf'), {})), strip(loadConfig(null, {})));
  });

  test('production.conf listens on 80/443, srs-front.conf sends /api/ and /rtc/ to 1985', () => {
    const p = loadConfig(join(CONFIG_DIR, 'production.conf'), {});
    assert.deepEqual(p.httpServer.listen.map((l) => l.port), [80]);
    assert.deepEqual(p.httpServer.https.listen.map((l) => l.port), [443]);
    const f = loadConfig(join(CONFIG_DIR, 'srs-front.conf'), {});
    const routes = Object.fromEntries(f.proxy.routes.map((r) => [r.prefix, r.upstream.origin]));
    assert.equal(routes['/api/'], 'http://127.0.0.1:1985');
    assert.equal(routes['/rtc/'], 'http://127.0.0.1:1985');
  });
});
