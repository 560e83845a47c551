import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigText } from '../../../src/config/index.js';
import { memoryLogger } from '../../../src/log.js';
import { checkTlsFiles, loadKeyPair } from '../../../src/net/tls.js';
import { writeKeyPair } from '../../helpers/tls.js';

const CLI = fileURLToPath(new URL('../../../src/cli.js', import.meta.url));

test('a configured key/cert that does not exist is an error naming the file; nothing is created', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-tls-'));
  const key = join(dir, 'nonexistent', 'k.pem');
  const cert = join(dir, 'nonexistent', 'c.pem');
  const { log } = memoryLogger();
  await assert.rejects(loadKeyPair(key, cert, log), (err: Error) => err.message.includes(key) && /no such file/.test(err.message));
  assert.equal(existsSync(join(dir, 'nonexistent')), false, 'no directory was made for it');
  const c = loadConfigText(`http_server { https { key ${key}; cert ${cert}; } }`, 't.conf');
  const problems = checkTlsFiles(c);
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems[0], new RegExp(`cannot read key ${key}: no such file`));
});

test('an unreadable configured cert is an error naming it; a usable pair is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-tls-'));
  const key = join(dir, 'k.pem');
  const cert = join(dir, 'c.pem');
  writeKeyPair(key, cert);
  const c = loadConfigText(`http_server { https { key ${key}; cert ${cert}; } }`, 't.conf');
  assert.deepEqual(checkTlsFiles(c), []);
  writeFileSync(cert, 'not a certificate\n');
  const problems = checkTlsFiles(c);
  assert.equal(problems.length, 1);
  assert.match(problems[0], new RegExp(`cert ${cert} are not a usable pair`));
});

test('only the default ./conf/ pair is generated when missing, key mode 0600', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-tls-'));
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const { log, lines } = memoryLogger();
    const pair = await loadKeyPair('./conf/server.key', './conf/server.crt', log);
    assert.match(pair.cert, /BEGIN CERTIFICATE/);
    assert.equal(statSync(join(dir, 'conf', 'server.key')).mode & 0o777, 0o600);
    assert.ok(lines.some((l) => /generated a self-signed certificate/.test(l)));
  } finally {
    process.chdir(cwd);
  }
});

test('streamgate -t fails on a missing configured cert, naming it; passes once it exists', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-tls-'));
  const conf = join(dir, 's.conf');
  writeFileSync(conf, `listen off; http_server { listen 8080; https { enabled on; key ${dir}/k.pem; cert ${dir}/c.pem; } }\n`);
  const bad = spawnSync(process.execPath, [CLI, '-t', '-c', conf], { encoding: 'utf8' });
  assert.equal(bad.status, 1, bad.stdout + bad.stderr);
  assert.match(bad.stderr, new RegExp(`cannot read key ${dir}/k.pem: no such file`));
  assert.match(bad.stderr, /test failed/);
  writeKeyPair(`${dir}/k.pem`, `${dir}/c.pem`);
  const good = spawnSync(process.execPath, [CLI, '-t', '-c', conf], { encoding: 'utf8' });
  assert.equal(good.status, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /test is successful/);
});

test('the acme block: defaults, validation, SRS-style environment overrides', () => {
  const d = loadConfigText('', 't.conf').httpServer;
  assert.equal(d.https.acme.enabled, false);
  assert.equal(d.https.acme.directory, 'https://acme-v02.api.letsencrypt.org/directory');
  assert.equal(d.https.acme.dir, './conf/acme');
  assert.equal(d.httpsRedirect, false);
  const c = loadConfigText('http_server { https_redirect on; https { acme { enabled on; domains A.example.com b.example.com; email ops@example.com; } } }', 't.conf', {
    SRS_HTTP_SERVER_HTTPS_ACME_DOMAINS: 'x.example.org y.example.org',
    SRS_HTTP_SERVER_HTTPS_ACME_DIRECTORY: 'https://127.0.0.1:14000/dir',
  });
  assert.deepEqual(c.httpServer.https.acme.domains, ['x.example.org', 'y.example.org']);
  assert.equal(c.httpServer.https.acme.directory, 'https://127.0.0.1:14000/dir');
  assert.equal(c.httpServer.https.acme.email, 'ops@example.com');
  assert.equal(c.httpServer.httpsRedirect, true);
  assert.throws(() => loadConfigText('http_server { https { acme { enabled on; } } }', 't.conf'), /names no domain/);
  assert.throws(() => loadConfigText('http_server { https { acme { domains *.example.com; } } }', 't.conf'), /no wildcards/);
  assert.throws(() => loadConfigText('http_server { https { acme { directory ftp://x; } } }', 't.conf'), /expects an http/);
});
