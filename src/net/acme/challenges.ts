import { createSecureContext, type SecureContext } from 'node:tls';
import type * as AcmeLib from 'acme-client';
import { acmeLib, type ChallengeSink, type ChallengeType } from './issuer.js';

/** RFC 8555 §8.3: the CA fetches `http://{domain}/.well-known/acme-challenge/{token}` on port 80. */
export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

/** RFC 8737 §4: the ALPN protocol a TLS-ALPN-01 validation offers, alone. */
export const ACME_TLS_ALPN = 'acme-tls/1';

/**
 * The answers to challenges in flight: HTTP-01 key authorizations by token, TLS-ALPN-01
 * certificates by domain. Entries exist only while the CA validates one of our own orders, so
 * there are at most as many as configured domains; a peer cannot add any.
 */
export class ChallengeBook implements ChallengeSink {
  private readonly http = new Map<string, string>();
  private readonly alpn = new Map<string, SecureContext>();

  async put(type: ChallengeType, domain: string, token: string, keyAuthorization: string, authz: AcmeLib.Authorization): Promise<void> {
    const acme = await acmeLib();
    if (type === 'http-01') {
      this.http.set(token, keyAuthorization);
      return;
    }
    // RFC 8737 §3: a self-signed certificate for the domain with the critical acmeIdentifier
    // extension holding SHA-256 of the key authorization; acme-client builds it. An ECDSA key, as
    // the default pair's: Node's SNI switch adds the new context's certificate to the handshake's
    // beside the default one, and OpenSSL, given an RSA one (the library's default) next to an
    // ECDSA one, kept serving the ECDSA default (measured: the VA saw "localhost").
    const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await acme.crypto.createPrivateEcdsaKey());
    this.alpn.set(domain, createSecureContext({ key, cert }));
  }

  remove(type: ChallengeType, domain: string, token: string): void {
    if (type === 'http-01') this.http.delete(token);
    else this.alpn.delete(domain);
  }

  /** The key authorization for a token, as the HTTP-01 body (RFC 8555 §8.3). */
  httpAnswer(token: string): string | undefined {
    return this.http.get(token);
  }

  alpnContext(domain: string): SecureContext | undefined {
    return this.alpn.get(domain);
  }

  hasAlpn(domain: string): boolean {
    return this.alpn.has(domain);
  }
}
