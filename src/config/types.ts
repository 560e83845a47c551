/**
 * The typed configuration that buildConfig (schema.ts) makes from a validated directive tree:
 * what every room of the gateway reads, apart from the parsing that fills it in.
 */
import type { AccessLogConfig } from './access-log.js';
import type { PublishPolicy } from '../ingest/access.js';
import type { DvrConfig } from '../record/types.js';
import type { ApiAuth, VhostAccess } from '../auth/types.js';

/** A `listen` argument: `8080`, `127.0.0.1:8080`, `[::1]:8080`. No host = every interface. */
export interface ListenAddr {
  host: string | undefined;
  port: number;
}

export interface ProxyRoute {
  /** Path prefix, matched longest first; `/` matches everything and so comes last. */
  prefix: string;
  /** Upstream origin and optional base path, e.g. http://127.0.0.1:1985. */
  upstream: URL;
  /** Host header sent upstream: the client's (Caddy's default) unless `host=upstream` or `host=NAME`. */
  host: 'client' | 'upstream' | string;
}

export interface VhostConfig {
  name: string;
  enabled: boolean;
  /** SRS http_static: serve `dir` under `mount` (`[vhost]` in the mount means "only for this Host"). */
  httpStatic: { enabled: boolean; mount: string; dir: string };
  /** SRS http_remux: live HTTP-FLV (and friends) under this mount. Default on in streamgate. */
  httpRemux: { enabled: boolean; mount: string };
  /** SRS hls: segments of about `fragmentS` seconds, a playlist window of about `windowS` seconds. */
  /** `disposeMs`: how long an unpublished stream's playlist (with ENDLIST) and segments stay (SRS hls_dispose). */
  /**
   * streamgate: `fmp4` (hls_fmp4, default off) cuts fMP4/CMAF segments instead of MPEG-TS; `ll`
   * (hls_ll, default off; implies fmp4) adds LL-HLS parts of `partS` seconds (hls_part, default
   * 0.333, 0.1 to 2 and under hls_fragment), blocking reloads, preload hints and delta updates.
   */
  hls: { enabled: boolean; fragmentS: number; windowS: number; disposeMs: number; fmp4: boolean; ll: boolean; partS: number };
  publish: PublishPolicy;
  /** mw_latency: merged-write window (ms); gop_cache: send the last GOP to joining players; time_jitter: player timelines (default full). */
  /** waitPublisherMs: how long an RTMP play of a stream nobody publishes yet waits for the publisher (0 = StreamNotFound at once). */
  play: { mwLatencyMs: number; gopCache: boolean; maxPlayers: number; waitPublisherMs: number; timeJitter: 'full' | 'zero' | 'off' };
  /** Edge pull: an HTTP origin (e.g. http://127.0.0.1:8080) that streams absent here are pulled from. */
  /** proxyHls: GET/HEAD of the origin's .m3u8/.ts go to it through the proxy (a front for SRS's HLS files). */
  edge: { origin: URL | null; idleTimeoutMs: number; connectTimeoutMs: number; proxyHls: boolean };
  /** security, http_hooks and token blocks: who may publish and play (src/auth/). */
  access: VhostAccess;
  /** SRS dvr: recording to files (src/record/). */
  dvr: DvrConfig;
}

/** The default key and cert: the only pair generated (self-signed) when missing. */
export const DEFAULT_TLS_KEY = './conf/server.key';
export const DEFAULT_TLS_CERT = './conf/server.crt';
/** RFC 8555 directory of Let's Encrypt's production CA. */
export const LETSENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

export interface AcmeConfig {
  enabled: boolean;
  /** One certificate per name, each served by SNI. */
  domains: string[];
  /** Contact for the CA's expiry and incident mail; null = none (RFC 8555 §7.3: optional). */
  email: string | null;
  /** The CA's directory URL (default: Let's Encrypt production). */
  directory: string;
  /** PEM file of CA certificates to trust for the directory's TLS (a private ACME server); null = the system's. */
  caCert: string | null;
  /** Where the account key, certificates and their keys are kept (files mode 0600). */
  dir: string;
}

export interface Limits {
  /** Live streams at once (0 = unlimited). */
  maxStreams: number;
  /** Players per stream (0 = unlimited). */
  maxPlayers: number;
  /** Time allowed to receive a request's headers (slowloris bound). */
  headerTimeoutMs: number;
  /** A request whose body or response moves no byte for this long is closed (NGINX's client_body_timeout, send_timeout). */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Request header bytes before 431. */
  maxHeaderBytes: number;
  /** Request-target bytes before 414. */
  maxUrlBytes: number;
  /** JSON body bytes accepted by the embedded API before 413. */
  maxApiBodyBytes: number;
  /** SIGTERM: how long to drain before the process exits anyway. */
  shutdownTimeoutMs: number;
  /**
   * Bytes the process holds in all for peers not yet authorised to publish or play: unfinished
   * RTMP messages before publish, HTTP/2 header blocks, relayed responses waiting on a client's
   * flow-control window (src/limits/budget.ts). Past it the peer that asked is cut off.
   */
  unauthorizedMemoryBytes: number;
  /** The same, per connection. */
  connectionMemoryBytes: number;
  /** Open connections from one address on every listener (0 = unlimited; NGINX's limit_conn). */
  maxConnectionsPerIp: number;
  /**
   * LL-HLS requests held at once over every stream (blocking reloads, preload hints waiting for
   * their part; default 8192). Past it a client gets 503 with Retry-After.
   */
  hlsHeldRequests: number;
}

export interface Config {
  /** The file it came from (for messages); "(defaults)" when none. */
  file: string;
  /** Top-level `listen`: the RTMP port(s). */
  rtmp: { listen: ListenAddr[] };
  maxConnections: number;
  httpApi: { enabled: boolean; listen: ListenAddr[]; auth: ApiAuth };
  httpServer: {
    enabled: boolean;
    listen: ListenAddr[];
    dir: string;
    crossdomain: boolean;
    /** Plain-HTTP requests answered 301 to https:// (ACME challenges, live stream paths and loopback excepted). */
    httpsRedirect: boolean;
    /** `own_h2` (default on): h2 connections served by src/http/h2/ instead of Node's http2 server. */
    https: { enabled: boolean; listen: ListenAddr[]; key: string; cert: string; ownH2: boolean; acme: AcmeConfig };
  };
  proxy: { routes: ProxyRoute[]; timeoutMs: number; connectTimeoutMs: number; keepAlive: number };
  consoleDir: string | null;
  playersDir: string | null;
  accessLog: 'combined' | 'json' | 'off';
  /** Where access lines go and how they are batched (`access_log FORMAT [PATH] [buffer=] [flush=]`). */
  accessLogFile: AccessLogConfig;
  limits: Limits;
  vhosts: VhostConfig[];
  /** Non-fatal notes for the start-up log (env overrides applied). */
  notes: string[];
  /**
   * `[warn]` lines, printed before the listening lines and by `-t`: SRS directives accepted
   * without effect, an http_server.dir that is missing or unreadable.
   */
  warnings: string[];
}
