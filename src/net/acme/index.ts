import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureContext, type SecureContext, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AcmeConfig, Config } from '../../config/index.js';
import type { FrontDoorOptions } from '../../http/frontdoor.js';
import type { Logger } from '../../log.js';
import type { KeyPair } from '../selfsigned.js';
import { generatesWhenMissing, loadKeyPair } from '../tls.js';
import { ACME_TLS_ALPN, ChallengeBook } from './challenges.js';
import { isLoopback, wrapFrontDoor, wrapHandler, type PlainHttpPolicy } from './http.js';
import { AcmeError, Issuer, type ChallengeType } from './issuer.js';
import { AcmeStore } from './store.js';

/** After a failed order, the next try waits this long, doubled per failure up to the maximum. */
const BACKOFF_MIN_MS = 60_000;
const BACKOFF_MAX_MS = 6 * 3600_000;
/** The renewal timer wakes at least this often (a suspended machine, a clock step). */
const CHECK_EVERY_MAX_MS = 3600_000;
/**
 * A new certificate is not ordered again sooner than this, even if due at once (a CA issuing very
 * short lifetimes, a clock far off): an order loop would burn the CA's rate limits.
 */
const MIN_REORDER_MS = 3600_000;
/** Renewal starts when this fraction of a certificate's lifetime has passed. */
const RENEW_AT_FRACTION = 2 / 3;

/** A domain's certificate as /api/v1/config shows it. */
export interface CertificateStatus {
  domain: string;
  /** 'valid': a CA's certificate is served; 'pending': the default (self-signed or configured) one is, until issuance. */
  status: 'valid' | 'pending';
  issuer: string | null;
  not_after: string | null;
  next_renewal: string | null;
  last_error: string | null;
}

interface Domain {
  name: string;
  ctx: SecureContext | null;
  issuer: string | null;
  notAfter: number;
  /** When the next order is due (renewal, or a retry after a failure); 0 = now. */
  due: number;
  failures: number;
  lastError: string | null;
  /** The challenge type that last worked: tried first next time. */
  preferred: ChallengeType | null;
  busy: boolean;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The HTTPS listener's certificates: the configured (or generated) default pair, and with
 * `acme { enabled on; }` one certificate per domain, obtained from the CA, picked by SNI,
 * renewed at two thirds of its lifetime (with backoff on failure) and swapped in for new
 * connections without touching open ones.
 */
export class Certificates {
  /** The renewal clock; tests move it forward to force a renewal. */
  now: () => number = Date.now;
  /** Peers exempt from https_redirect; tests on loopback stand in for a remote client by replacing it. */
  isLocalPeer: (ip: string | undefined) => boolean = isLoopback;
  private config: Config | null = null;
  private pair: KeyPair | null = null;
  private readonly book = new ChallengeBook();
  private readonly domains = new Map<string, Domain>();
  private store: AcmeStore | null = null;
  private issuer: Issuer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private roles = { http: false, https: false, httpsPort: null as number | null };
  /** TLS sockets that asked for acme-tls/1 (marked when ALPN is selected, read when SNI is). */
  private readonly alpnSockets = new WeakSet<object>();
  private alpnHooked = false;
  private sniHooked = false;
  private closed = false;
  private readonly policy: PlainHttpPolicy;

  constructor(private readonly log: Logger, streamPath: RegExp) {
    this.policy = {
      book: this.book,
      acme: () => this.acme?.enabled === true,
      redirect: () => this.config?.httpServer.httpsRedirect === true,
      httpsPort: () => this.roles.httpsPort,
      local: (ip) => this.isLocalPeer(ip),
      streamPath,
    };
  }

  private get acme(): AcmeConfig | null {
    return this.config?.httpServer.https.enabled ? this.config.httpServer.https.acme : null;
  }

  /** Start-up, before the servers exist: the default pair, and the stored ACME certificates. */
  async load(config: Config): Promise<void> {
    this.config = config;
    const https = config.httpServer.https;
    if (!config.httpServer.enabled || !https.enabled) return;
    this.pair = await loadKeyPair(https.key, https.cert, this.log);
    await this.loadAcme();
  }

  /** Options for an HTTPS server: the default pair, and per-name certificates by SNI. */
  serverOptions(): { key: string; cert: string; SNICallback?: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void } {
    const self = this;
    const pair = { key: this.pair!.key, cert: this.pair!.cert };
    // Without ACME every name gets the one pair: no detour into JS on each handshake.
    if (!this.acme?.enabled) return pair;
    this.sniHooked = true;
    return {
      ...pair,
      // `this` is the TLS socket being handshaken (as in ALPNCallback); see attach().
      SNICallback(this: unknown, name: string, cb: (err: Error | null, ctx?: SecureContext) => void) {
        const n = name.toLowerCase();
        if (self.alpnSockets.has(this as object)) return cb(null, self.book.alpnContext(n));
        cb(null, self.domains.get(n)?.ctx ?? undefined);
      },
    };
  }

  /**
   * TLS-ALPN-01 (RFC 8737) on an HTTPS server: a ClientHello offering `acme-tls/1` for a domain
   * with a challenge in flight gets that protocol and, by SNI, the challenge certificate.
   * Node's http2 server fixes its ALPN list (h2, http/1.1) and refuses an ALPNCallback beside
   * it, so the list is replaced by a callback that makes the same choice; Node calls it before
   * the SNI callback, on the same socket. Where the server's list is not where this expects it,
   * TLS-ALPN-01 is off and the log says so.
   */
  attach(server: TlsServer): void {
    if (!this.acme?.enabled) return;
    const s = server as TlsServer & { ALPNProtocols?: unknown; ALPNCallback?: unknown };
    if (!Buffer.isBuffer(s.ALPNProtocols) || s.ALPNCallback !== undefined) {
      this.log.warn('acme: this Node.js keeps its HTTPS ALPN settings elsewhere; TLS-ALPN-01 is off (HTTP-01 still works)');
      return;
    }
    const ours = parseAlpnList(s.ALPNProtocols);
    const alpnSockets = this.alpnSockets;
    const book = this.book;
    s.ALPNProtocols = undefined;
    s.ALPNCallback = function (this: TLSSocket | undefined, { servername, protocols }: { servername?: string; protocols: string[] }) {
      if (protocols.includes(ACME_TLS_ALPN) && servername && this && book.hasAlpn(servername.toLowerCase())) {
        alpnSockets.add(this);
        return ACME_TLS_ALPN;
      }
      // The server's preference, as OpenSSL's SSL_select_next_proto picks: h2, then http/1.1.
      return ours.find((p) => protocols.includes(p));
    };
    this.alpnHooked = true;
  }

  /** A plain-HTTP listener's handler: ACME HTTP-01 answers and https_redirect come first. */
  httpHandler(handler: Handler): Handler {
    return wrapHandler(this.policy, handler);
  }

  /** The same rule for the plain-HTTP front door. */
  frontDoor(opts: FrontDoorOptions): FrontDoorOptions {
    return wrapFrontDoor(this.policy, opts);
  }

  /** After every listener is bound: what challenges can be answered, then the first orders. */
  start(listeners: { role: string; port: number }[]): void {
    this.roles = {
      http: listeners.some((l) => l.role === 'http'),
      https: listeners.some((l) => l.role === 'https'),
      httpsPort: listeners.find((l) => l.role === 'https')?.port ?? null,
    };
    this.schedule(0);
  }

  /** SIGHUP: the default pair again (on every server), and ACME anew if its block changed. */
  async reload(config: Config, servers: TlsServer[]): Promise<void> {
    const before = JSON.stringify(this.acme);
    this.config = config;
    const https = config.httpServer.https;
    if (servers.length === 0 || !https.enabled) return;
    this.pair = await loadKeyPair(https.key, https.cert, this.log);
    for (const s of servers) s.setSecureContext({ key: this.pair.key, cert: this.pair.cert });
    if (JSON.stringify(this.acme) === before) return;
    if (this.acme?.enabled && !this.sniHooked) this.log.warn('acme: enabled by a reload: certificates are obtained now and served after a restart');
    else if (this.acme?.enabled && !this.alpnHooked) this.log.warn('acme: enabled by a reload: TLS-ALPN-01 needs a restart, HTTP-01 works now');
    await this.loadAcme();
    this.schedule(0);
  }

  /** Each domain's certificate for /api/v1/config. */
  info(): CertificateStatus[] {
    return [...this.domains.values()].map((d) => ({
      domain: d.name,
      status: d.ctx ? 'valid' : 'pending',
      issuer: d.issuer,
      not_after: d.ctx ? new Date(d.notAfter).toISOString() : null,
      next_renewal: d.ctx && Number.isFinite(d.due) ? new Date(d.due).toISOString() : null,
      last_error: d.lastError,
    }));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.issuer?.close();
    this.issuer = null;
  }

  /** Orders for every domain that is due by the renewal clock; resolves when they have all ended. */
  async renewDue(): Promise<void> {
    const now = this.now();
    const due = [...this.domains.values()].filter((d) => !d.busy && d.due <= now);
    await Promise.all(due.map((d) => this.order(d)));
    this.schedule();
  }

  private async loadAcme(): Promise<void> {
    this.issuer?.close();
    this.issuer = null;
    this.domains.clear();
    const a = this.acme;
    if (!a?.enabled) return;
    this.store = new AcmeStore(a.dir);
    const caCert = a.caCert === null ? null : await readCa(a.caCert);
    this.issuer = new Issuer(a.directory, a.email, this.store, caCert);
    const https = this.config!.httpServer.https;
    const fallback = `${https.cert}${generatesWhenMissing(https.key, https.cert) ? ', self-signed' : ''}`;
    for (const name of a.domains) {
      const d: Domain = { name, ctx: null, issuer: null, notAfter: 0, due: 0, failures: 0, lastError: null, preferred: null, busy: false };
      this.domains.set(name, d);
      const stored = await this.store.load(name);
      if (stored === null) {
        this.log.info(`acme: no certificate for ${name} yet: serving the default one (${fallback}) until ${new URL(a.directory).host} issues one`);
        continue;
      }
      try {
        this.install(d, stored.key, stored.cert);
        this.log.info(`acme: ${name}: serving the stored certificate from ${a.dir} (issuer ${d.issuer}, valid until ${new Date(d.notAfter).toISOString()}, renewal from ${new Date(d.due).toISOString()})`);
      } catch (err) {
        this.log.warn(`acme: ${name}: the stored certificate in ${a.dir} is unusable (${(err as Error).message}); ordering a new one`);
      }
    }
  }

  /** A certificate into service: new handshakes for its name get it from the next SNI lookup on. */
  private install(d: Domain, key: string, cert: string): void {
    const x = new X509Certificate(cert);
    if (!x.checkHost(d.name)) throw new Error(`it is not for ${d.name}`);
    const ctx = createSecureContext({ key, cert });
    const from = Date.parse(x.validFrom);
    const to = Date.parse(x.validTo);
    d.ctx = ctx;
    d.issuer = /CN=([^\n,]+)/.exec(x.issuer)?.[1] ?? x.issuer.replace(/\n/g, ', ');
    d.notAfter = to;
    d.due = from + (to - from) * RENEW_AT_FRACTION;
    d.failures = 0;
    d.lastError = null;
  }

  /** One domain's order, each answerable challenge type in turn until one works. */
  private async order(d: Domain): Promise<void> {
    const issuer = this.issuer;
    if (!issuer || this.closed) return;
    const types: ChallengeType[] = [];
    if (this.roles.http) types.push('http-01');
    if (this.roles.https && this.alpnHooked) types.push('tls-alpn-01');
    const pref = d.preferred;
    if (pref !== null && types.includes(pref)) types.splice(0, types.length, pref, ...types.filter((t) => t !== pref));
    if (types.length === 0) {
      d.lastError = 'no listener can answer a challenge (http-01 needs the HTTP listener, tls-alpn-01 the HTTPS one)';
      d.due = Infinity;
      this.log.error(`acme: ${d.name}: ${d.lastError}`);
      return;
    }
    d.busy = true;
    // Not due again until this order ends: the timer must not spin on it meanwhile.
    d.due = Infinity;
    try {
      for (const [i, type] of types.entries()) {
        const renewing = d.ctx !== null;
        this.log.info(`acme: ${d.name}: ${renewing ? 'renewing' : 'ordering'} a certificate with ${type}`);
        try {
          const got = await issuer.obtain(d.name, type, this.book);
          if (this.closed || this.issuer !== issuer) return;
          // On disk first: a certificate in service is always the one the next start finds.
          await this.store!.save(d.name, got.key, got.cert);
          this.install(d, got.key, got.cert);
          d.due = Math.max(d.due, this.now() + MIN_REORDER_MS);
          d.preferred = type;
          this.log.info(`acme: ${d.name}: certificate ${renewing ? 'renewed' : 'issued'} by ${d.issuer} via ${type}, valid until ${new Date(d.notAfter).toISOString()}, renewal from ${new Date(d.due).toISOString()}; new connections get it now`);
          return;
        } catch (err) {
          if (this.closed || this.issuer !== issuer) return;
          const last = i === types.length - 1;
          d.lastError = describe(err);
          if (!last) {
            this.log.warn(`acme: ${d.name}: order with ${type} failed: ${d.lastError}; trying ${types[i + 1]}`);
            continue;
          }
          d.failures++;
          const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (d.failures - 1));
          d.due = this.now() + wait;
          const serving = d.ctx ? 'the current certificate stays in service' : 'serving the default certificate meanwhile';
          this.log.error(`acme: ${d.name}: order with ${type} failed: ${d.lastError}; ${serving}; next try in ${Math.round(wait / 1000)} s`);
        }
      }
    } finally {
      d.busy = false;
    }
  }

  /** The timer for the next due order (at most an hour away, so a clock step is noticed). */
  private schedule(inMs?: number): void {
    if (this.closed || this.domains.size === 0 || this.roles.httpsPort === null) return;
    if (this.timer) clearTimeout(this.timer);
    const next = Math.min(...[...this.domains.values()].map((d) => d.due));
    const wait = inMs ?? Math.max(0, Math.min(CHECK_EVERY_MAX_MS, next - this.now()));
    this.timer = setTimeout(() => void this.renewDue(), wait);
    this.timer.unref();
  }
}

/** acme-client's message and the CA's problem document, for one log line. */
function describe(err: unknown): string {
  const msg = (err as Error)?.message ?? String(err);
  const problem = err instanceof AcmeError ? err.problem : null;
  return problem ? `${msg} (CA problem document: ${JSON.stringify(problem)})` : msg;
}

async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`acme: cannot read ca_cert ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
}

/** The wire form of an ALPN list (RFC 7301 §3.1: length-prefixed names) back into names. */
function parseAlpnList(buf: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = buf[i];
    out.push(buf.toString('latin1', i + 1, i + 1 + n));
    i += 1 + n;
  }
  return out;
}
