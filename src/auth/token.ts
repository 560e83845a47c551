import { createRemoteJWKSet, customFetch, jwtVerify, type JWTPayload } from 'jose';
import type { Action, TokenConfig } from './types.js';
import type { StreamName } from '../live/types.js';

/** A JWKS is fetched again at most this often when an unknown key id shows up (jose's cooldown). */
const JWKS_COOLDOWN_MS = 30_000;
/** A cached JWKS is refreshed after this long even if every key id is known. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** A JWKS fetch that takes longer counts as a failure (the token is refused, the fetch retried later). */
const JWKS_TIMEOUT_MS = 3_000;
/**
 * A JWKS answer longer than this is refused unread past the bound: a key set holds a handful of
 * keys (a few KiB), and a misconfigured or hostile URL must not make us buffer without end.
 */
export const MAX_JWKS_BYTES = 64 * 1024;
/** A token longer than this is refused unread: nothing legitimate needs more. */
export const MAX_TOKEN_BYTES = 4096;
/** Clock skew tolerated on `exp`/`nbf` between the issuer and us. */
const CLOCK_TOLERANCE_S = 5;

type KeySource = Parameters<typeof jwtVerify>[1];

/**
 * Signed tokens (JWT): HS256 with a shared secret, or ES256/RS256 against a JWKS URL that jose
 * fetches, caches and refreshes. Claims: `action` (publish, play or *), `app`, `stream` (or *),
 * `exp` (required). The reason a token is refused goes to the log, never to the client.
 */
export class TokenChecker {
  private readonly key: KeySource;
  private readonly algorithms: string[];

  constructor(readonly config: TokenConfig) {
    if (config.jwks) {
      this.key = createRemoteJWKSet(config.jwks, {
        cooldownDuration: JWKS_COOLDOWN_MS,
        cacheMaxAge: JWKS_MAX_AGE_MS,
        timeoutDuration: JWKS_TIMEOUT_MS,
        [customFetch]: boundedFetch,
      });
      this.algorithms = ['ES256', 'RS256'];
    } else {
      this.key = new TextEncoder().encode(config.secret ?? '');
      this.algorithms = ['HS256'];
    }
  }

  required(action: Action): boolean {
    return this.config.enabled && this.config.require[action];
  }

  /** Null when the token is good for this action on this stream, else why not. */
  async check(token: string | null, action: Action, name: StreamName): Promise<string | null> {
    if (!token) return 'no token';
    if (token.length > MAX_TOKEN_BYTES) return `token longer than ${MAX_TOKEN_BYTES} bytes`;
    let claims: JWTPayload;
    try {
      const v = await jwtVerify(token, this.key as Parameters<typeof jwtVerify>[1] & Uint8Array, { algorithms: this.algorithms, requiredClaims: ['exp'], clockTolerance: CLOCK_TOLERANCE_S });
      claims = v.payload;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      return `token refused (${e.code ?? 'error'}: ${e.message ?? String(err)})`;
    }
    if (claims.action !== action && claims.action !== '*') return `token is for action ${JSON.stringify(claims.action)}, not ${action}`;
    if (claims.app !== name.app && claims.app !== '*') return `token is for app ${JSON.stringify(claims.app)}, not ${name.app}`;
    if (claims.stream !== name.stream && claims.stream !== '*') return `token is for stream ${JSON.stringify(claims.stream)}, not ${name.stream}`;
    return null;
  }
}

/** fetch for jose that reads at most MAX_JWKS_BYTES of the answer and fails past it. */
async function boundedFetch(url: string, options: RequestInit): Promise<Response> {
  const res = await fetch(url, options);
  if (!res.body) return res;
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_JWKS_BYTES) {
    await res.body.cancel();
    throw new Error(`JWKS answer of ${declared} bytes is over the ${MAX_JWKS_BYTES}-byte bound`);
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_JWKS_BYTES) throw new Error(`JWKS answer is over the ${MAX_JWKS_BYTES}-byte bound`);
    parts.push(chunk);
  }
  return new Response(Buffer.concat(parts), { status: res.status, statusText: res.statusText, headers: res.headers });
}
