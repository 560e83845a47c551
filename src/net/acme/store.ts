import { createHash, generateKeyPairSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/**
 * What ACME keeps on disk, in the configured `dir`: the account key and URL per CA directory,
 * and each domain's certificate chain and private key. Every file is written mode 0600 to a
 * temporary name and renamed, so a crash mid-write never leaves a half file that the next start
 * would serve.
 */
export class AcmeStore {
  private writes = 0;

  constructor(readonly dir: string) {}

  /** The account of one CA: its key (made on first use) and its URL once registered. */
  async account(directory: string): Promise<{ key: string; url: string | null }> {
    const base = this.accountBase(directory);
    let key = await readOrNull(`${base}.key`);
    if (key === null) {
      // ECDSA P-256: ES256 is the JWS algorithm every ACME CA accepts (RFC 8555 §6.2).
      key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      await this.write(`${base}.key`, key);
    }
    const meta = await readOrNull(`${base}.json`);
    let url: string | null = null;
    if (meta !== null) {
      try {
        url = (JSON.parse(meta) as { url?: string }).url ?? null;
      } catch {
        url = null; // rewritten after the next registration
      }
    }
    return { key, url };
  }

  async saveAccountUrl(directory: string, url: string): Promise<void> {
    await this.write(`${this.accountBase(directory)}.json`, `${JSON.stringify({ directory, url })}\n`);
  }

  /** A domain's stored certificate chain and key, or null when there is none (or half of one). */
  async load(domain: string): Promise<{ key: string; cert: string } | null> {
    const [key, cert] = await Promise.all([readOrNull(join(this.dir, `${domain}.key`)), readOrNull(join(this.dir, `${domain}.crt`))]);
    return key !== null && cert !== null ? { key, cert } : null;
  }

  /** Key first: a certificate on disk always has its key beside it. */
  async save(domain: string, key: string, cert: string): Promise<void> {
    await this.write(join(this.dir, `${domain}.key`), key);
    await this.write(join(this.dir, `${domain}.crt`), cert);
  }

  private accountBase(directory: string): string {
    // One account per CA: a key registered with one directory means nothing to another.
    const host = new URL(directory).hostname.replace(/[^a-zA-Z0-9.-]/g, '_');
    return join(this.dir, `account-${host}-${createHash('sha256').update(directory).digest('hex').slice(0, 8)}`);
  }

  private async write(path: string, text: string): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.${++this.writes}.tmp`;
    await fsp.writeFile(tmp, text, { mode: 0o600 });
    await fsp.chmod(tmp, 0o600);
    await fsp.rename(tmp, path);
  }
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
