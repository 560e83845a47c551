import { promises as fsp } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { generateSelfSigned, type KeyPair } from './selfsigned.js';

/**
 * The HTTPS key and certificate: the configured files, or, when neither exists yet, a generated
 * self-signed pair written there (key mode 0600) so the next start serves the same one.
 */
export async function loadKeyPair(keyPath: string, certPath: string, log: Logger): Promise<KeyPair> {
  const [key, cert] = await Promise.all([read(keyPath), read(certPath)]);
  if (key !== null && cert !== null) {
    // OpenSSL's own message ("PEM routines::bad base64 decode") names no file: an operator
    // reloading a bad pair must learn which one it is.
    try {
      createSecureContext({ key, cert });
    } catch (err) {
      throw new Error(`https: key ${keyPath} and cert ${certPath} are not a usable pair: ${(err as Error).message}`);
    }
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

async function read(path: string): Promise<string | null> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`https: cannot read ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
}
