import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateSelfSigned } from '../../src/net/selfsigned.js';

/**
 * Writes a self-signed pair for localhost where a test's config names its key and cert: a
 * configured pair that does not exist is a start-up error, not generated (only ./conf/'s is).
 */
export function writeKeyPair(keyPath: string, certPath: string): void {
  const pair = generateSelfSigned();
  mkdirSync(dirname(keyPath), { recursive: true });
  mkdirSync(dirname(certPath), { recursive: true });
  writeFileSync(keyPath, pair.key, { mode: 0o600 });
  writeFileSync(certPath, pair.cert);
}

/** The same in `dir` (k.pem, c.pem), returned as the config's `key …; cert …;` directives. */
export function keyPairIn(dir: string): string {
  writeKeyPair(`${dir}/k.pem`, `${dir}/c.pem`);
  return `key ${dir}/k.pem; cert ${dir}/c.pem;`;
}
