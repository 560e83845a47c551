import { promises as fsp, readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { dirname } from 'node:path';
import { DEFAULT_TLS_CERT, DEFAULT_TLS_KEY, type Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { generateSelfSigned, type KeyPair } from './selfsigned.js';

/** The pair generated when missing: only the default one, so a mistyped path is an error, not a new file. */
export function generatesWhenMissing(keyPath: string, certPath: string): boolean {
  return keyPath === DEFAULT_TLS_KEY && certPath === DEFAULT_TLS_CERT;
}

/**
 * The HTTPS key and certificate: the configured files. When the default pair (`./conf/`) does
 * not exist yet, a self-signed pair is generated there (key mode 0600) so the next start serves
 * the same one; any other configured file that is missing or unreadable is an error naming it.
 */
export async function loadKeyPair(keyPath: string, certPath: string, log: Logger): Promise<KeyPair> {
  const generate = generatesWhenMissing(keyPath, certPath);
  // Settled together, then reported key first: the same config always names the same file.
  const [k, c] = await Promise.allSettled([read(keyPath, 'key', generate), read(certPath, 'cert', generate)]);
  if (k.status === 'rejected') throw k.reason;
  if (c.status === 'rejected') throw c.reason;
  const key = k.value;
  const cert = c.value;
  if (key !== null && cert !== null) {
    checkPair(key, cert, keyPath, certPath);
    return { key, cert };
  }
  if (key !== null || cert !== null) {
    throw new Error(`https: found ${key !== null ? `key ${keyPath}` : `cert ${certPath}`} but not ${key !== null ? `cert ${certPath}` : `key ${keyPath}`}: provide both, or remove both to get a generated self-signed pair`);
  }
  const pair = generateSelfSigned();
  try {
    await fsp.mkdir(dirname(keyPath), { recursive: true });
    await fsp.mkdir(dirname(certPath), { recursive: true });
    await fsp.writeFile(keyPath, pair.key, { mode: 0o600, flag: 'wx' });
    await fsp.chmod(keyPath, 0o600);
    await fsp.writeFile(certPath, pair.cert, { mode: 0o644, flag: 'wx' });
    log.info(`https: no key/cert found, generated a self-signed certificate for localhost: ${certPath} (key ${keyPath}, mode 0600); set http_server.https.key and cert for a real one`);
  } catch (err) {
    log.warn(`https: generated a self-signed certificate for localhost but could not save it (${(err as NodeJS.ErrnoException).code}): it lives in memory until exit`);
  }
  return pair;
}

/**
 * What `-t` can say without binding anything: a configured key or cert that is missing,
 * unreadable or not a pair, and an ACME `ca_cert` that cannot be read. Returns the problems.
 */
export function checkTlsFiles(c: Config): string[] {
  const https = c.httpServer.https;
  if (!c.httpServer.enabled || !https.enabled) return [];
  const problems: string[] = [];
  const generate = generatesWhenMissing(https.key, https.cert);
  const readSync = (path: string, what: string): string | null => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && generate) return null;
      problems.push(`https: cannot read ${what} ${path}: ${describe(code)}`);
      return null;
    }
  };
  const key = readSync(https.key, 'key');
  const cert = readSync(https.cert, 'cert');
  if (key !== null && cert !== null) {
    try {
      checkPair(key, cert, https.key, https.cert);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (https.acme.enabled && https.acme.caCert !== null) readSync(https.acme.caCert, 'acme ca_cert');
  return problems;
}

function checkPair(key: string, cert: string, keyPath: string, certPath: string): void {
  // OpenSSL's own message ("PEM routines::bad base64 decode") names no file: an operator
  // reloading a bad pair must learn which one it is.
  try {
    createSecureContext({ key, cert });
  } catch (err) {
    throw new Error(`https: key ${keyPath} and cert ${certPath} are not a usable pair: ${(err as Error).message}`);
  }
}

function describe(code: string | undefined): string {
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? 'unreadable';
}

async function read(path: string, what: string, missingOk: boolean): Promise<string | null> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && missingOk) return null;
    throw new Error(`https: cannot read ${what} ${path}: ${describe(code)}${code === 'ENOENT' ? '; set http_server.https.key and cert to existing files, or remove both directives to use a generated self-signed pair' : ''}`);
  }
}
