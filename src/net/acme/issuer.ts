import https from 'node:https';
import type * as AcmeLib from 'acme-client';

type Acme = typeof AcmeLib;
let lib: Promise<Acme> | null = null;

/**
 * acme-client and what it brings (axios, node-forge, an X.509 library) take hundreds of
 * milliseconds to load, seconds on a busy machine: loaded on first use, so a gateway without
 * ACME starts as fast as before.
 */
export function acmeLib(): Promise<Acme> {
  lib ??= import('acme-client').then((m) => {
    hookAxios(m);
    return m;
  });
  return lib;
}
import type { AcmeStore } from './store.js';

/** The challenge types streamgate answers itself (RFC 8555 §8.3, RFC 8737). */
export type ChallengeType = 'http-01' | 'tls-alpn-01';

/** No answer from the CA for this long is a failure (axios, under acme-client, waits forever by default). */
const CA_REQUEST_TIMEOUT_MS = 30_000;

/** Where challenge answers are put while the CA validates, and taken away after. */
export interface ChallengeSink {
  put(type: ChallengeType, domain: string, token: string, keyAuthorization: string, authz: AcmeLib.Authorization): Promise<void>;
  remove(type: ChallengeType, domain: string, token: string): void;
}

/** A failed issuance: the message, and the CA's problem document (RFC 8555 §6.7, RFC 7807) when it sent one. */
export class AcmeError extends Error {
  constructor(message: string, readonly problem: unknown) {
    super(message);
  }
}

/**
 * acme-client sends every request through one shared axios instance, so trust for a private CA
 * (`ca_cert`) and the last problem document cannot be per client: they are kept here per CA
 * origin, registered while a Certificates instance uses that CA. The only process-wide state in
 * this module, forced by the library's.
 */
interface Origin {
  agent: https.Agent | undefined;
  users: number;
  problem: unknown;
}
const origins = new Map<string, Origin>();
function hookAxios(acme: Acme): void {
  // A failure is ours to retry with backoff: the library's own five retries, 5 s apart and
  // growing, held a "CA down" answer back for over a minute. One retry keeps a Retry-After.
  const defaults = acme.axios.defaults as unknown as { acmeSettings?: Record<string, number> };
  if (defaults.acmeSettings) defaults.acmeSettings = { ...defaults.acmeSettings, retryMaxAttempts: 1, retryDefaultDelay: 2 };
  acme.axios.interceptors.request.use((config) => {
    const o = config.url ? origins.get(new URL(config.url).origin) : undefined;
    if (o?.agent) config.httpsAgent = o.agent;
    config.timeout ??= CA_REQUEST_TIMEOUT_MS;
    return config;
  });
  acme.axios.interceptors.response.use((resp) => {
    const o = resp.config.url ? origins.get(new URL(resp.config.url).origin) : undefined;
    const data = resp.data as { type?: string; error?: { type?: string } } | undefined;
    // A problem comes as the body of a 4xx/5xx, or as the `error` of an invalid challenge or authorization.
    if (o && data && typeof data === 'object') {
      if (typeof data.type === 'string' && data.type.startsWith('urn:')) o.problem = data;
      else if (data.error && typeof data.error === 'object') o.problem = data.error;
    }
    return resp;
  });
}

/** One CA as this gateway uses it: its account (made or reused), and orders for one domain at a time. */
export class Issuer {
  /** The account, made once for every domain's order (they start together). */
  private client: Promise<AcmeLib.Client> | null = null;
  private readonly agent: https.Agent | undefined;
  private readonly origin: string;

  constructor(private readonly directory: string, private readonly email: string | null, private readonly store: AcmeStore, caCert: string | null) {
    this.origin = new URL(directory).origin;
    const o = origins.get(this.origin) ?? { agent: undefined, users: 0, problem: null };
    if (caCert !== null) o.agent = new https.Agent({ ca: caCert });
    this.agent = o.agent;
    o.users++;
    origins.set(this.origin, o);
  }

  close(): void {
    const o = origins.get(this.origin);
    if (!o) return;
    if (--o.users === 0) {
      o.agent?.destroy();
      origins.delete(this.origin);
    }
  }

  /** The account: the stored URL with the stored key, else a new registration (saved). */
  private account(): Promise<AcmeLib.Client> {
    this.client ??= this.register().catch((err: unknown) => {
      this.client = null;
      throw err;
    });
    return this.client;
  }

  private async register(): Promise<AcmeLib.Client> {
    const acme = await acmeLib();
    const acct = await this.store.account(this.directory);
    const client = new acme.Client({
      directoryUrl: this.directory,
      accountKey: acct.key,
      accountUrl: acct.url ?? undefined,
      // Polls for a challenge's or an order's status from 0.5 s, doubling: the library's 5 s
      // first wait made every issuance at least 5 s longer than the CA needed.
      backoffMin: 500,
      backoffMax: 10_000,
      backoffAttempts: 12,
    });
    if (acct.url === null) {
      // With the same key, a CA answers an existing account's URL (RFC 8555 §7.3.1): a lost .json costs nothing.
      await client.createAccount({ termsOfServiceAgreed: true, contact: this.email ? [`mailto:${this.email}`] : undefined });
      await this.store.saveAccountUrl(this.directory, client.getAccountUrl());
    }
    return client;
  }

  /** Why the CA's directory cannot be reached (refused, TLS, timeout), or null when it can. */
  private probe(): Promise<string | null> {
    return new Promise((resolve) => {
      const req = https.get(this.directory, { agent: this.agent, timeout: CA_REQUEST_TIMEOUT_MS }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? null : `the directory answered ${res.statusCode}`);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${CA_REQUEST_TIMEOUT_MS / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ? `${err.code} (${err.message})` : err.message));
    });
  }

  /**
   * One order for `domain` proved with `type`: a new private key, the challenge answered through
   * `sink`, the certificate chain downloaded. Throws AcmeError with the CA's problem document.
   */
  async obtain(domain: string, type: ChallengeType, sink: ChallengeSink): Promise<{ key: string; cert: string }> {
    const origin = origins.get(this.origin)!;
    origin.problem = null;
    try {
      const acme = await acmeLib();
      const client = await this.account();
      const order = await client.createOrder({ identifiers: [{ type: 'dns', value: domain }] });
      for (const authz of await client.getAuthorizations(order)) {
        if (authz.status === 'valid') continue; // a recent validation the CA still honours
        const ch = authz.challenges.find((c) => c.type === type);
        if (!ch) throw new AcmeError(`the CA offers no ${type} challenge (offered: ${authz.challenges.map((c) => c.type).join(', ')})`, null);
        const keyAuthorization = await client.getChallengeKeyAuthorization(ch);
        await sink.put(type, domain, ch.token, keyAuthorization, authz);
        try {
          await client.completeChallenge(ch);
          await client.waitForValidStatus(ch);
        } finally {
          sink.remove(type, domain, ch.token);
        }
      }
      const [key, csr] = await acme.crypto.createCsr({ commonName: domain, altNames: [domain] }, await acme.crypto.createPrivateEcdsaKey());
      const final = await client.finalizeOrder(order, csr);
      const cert = await client.getCertificate(final);
      return { key: key.toString(), cert };
    } catch (err) {
      if (err instanceof AcmeError) throw err;
      // Without a problem document the request itself failed (acme-client then reports its own
      // TypeError after a network error): the directory says why in the operator's terms.
      const unreachable = origin.problem === null ? await this.probe() : null;
      if (unreachable !== null) throw new AcmeError(`the CA ${this.directory} is unreachable: ${unreachable}`, null);
      throw new AcmeError((err as Error).message || String(err), origin.problem);
    }
  }
}
