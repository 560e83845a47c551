import { randomBytes } from 'node:crypto';
import type { VhostConfig } from '../config/index.js';
import type { StreamName } from '../live/types.js';
import type { Logger } from '../log.js';
import { PublishGuard } from '../ingest/access.js';
import { HookCaller, onDvrBody } from './hooks.js';
import { SecurityRules } from './security.js';
import { TokenChecker } from './token.js';
import type { Action, HookEvent, VhostAccess } from './types.js';
import { HlsGrants } from './hls-grants.js';

/** What a door knows about who asks to publish or play. */
export interface DoorRequest {
  action: Action;
  name: StreamName;
  ip: string;
  /** The query of the stream URL (RTMP: the stream name's, then the tcUrl's): `?secret=`, `?token=`. */
  query: URLSearchParams;
  /** `Authorization: Bearer …` where the client can send headers; null otherwise. */
  bearer: string | null;
  tcUrl: string;
  pageUrl: string;
  /** For the log line: RTMP, HTTP-FLV, HLS … */
  protocol: string;
  /** The connection's id when it has one already (RTMP: on_connect and on_publish share it). */
  clientId?: string;
  /** The live stream's id, when it exists (hooks' stream_id). */
  streamId?: string;
}

/** An allowed publish or play: `end()` sends its on_unpublish / on_stop, after its on_publish / on_play. */
export interface Grant {
  readonly ok: true;
  readonly clientId: string;
  end(): void;
}

export type Verdict = Grant | { readonly ok: false; readonly status: 401 | 403 };

export interface AccessDeps {
  vhost: (name: string) => VhostConfig;
  log: Logger;
  serverId: string;
  serviceId: string;
}

interface Compiled {
  security: SecurityRules;
  token: TokenChecker;
  publish: PublishGuard;
}

/** Ended publishers' hook bodies kept for a late on_dvr, at most. */
const MAX_UNPUBLISHED_BODIES = 1024;

/**
 * The one policy chain every door asks, once per publish or play: SRS's `security` rules, then
 * the publish allow/secret (or, where a token is required, the token instead), then the signed
 * token, then `http_hooks`. The first refusal ends the chain with one log line naming the step
 * and its reason; the client gets only 401/403 (or RTMP's Denied), never the reason.
 */
export class AccessControl {
  private readonly compiled = new WeakMap<VhostAccess, Compiled>();
  readonly hooks: HookCaller;
  readonly hls: HlsGrants;
  /** HLS PUT uploaders, as sessions too: a stream is dozens of PUTs a minute. */
  readonly uploads: HlsGrants;
  /** The on_publish body of each live stream's publisher, for its on_hls calls. */
  private readonly publishers = new Map<string, Record<string, unknown>>();
  /** The last on_publish body of streams that ended, for their last on_dvr (bounded, oldest dropped). */
  private readonly unpublished = new Map<string, Record<string, unknown>>();

  constructor(private readonly deps: AccessDeps) {
    this.hooks = new HookCaller(deps.log);
    this.hls = new HlsGrants((r) => this.authorise(r));
    this.uploads = new HlsGrants((r) => this.authorise(r));
  }

  private of(v: VhostConfig): Compiled {
    let c = this.compiled.get(v.access);
    if (!c) {
      c = { security: new SecurityRules(v.access.security), token: new TokenChecker(v.access.token), publish: new PublishGuard(v.publish) };
      this.compiled.set(v.access, c);
    }
    return c;
  }

  /** Whether playing on this vhost is controlled at all: if not, the fast paths need not ask. */
  guardsPlay(vhost: string): boolean {
    const a = this.deps.vhost(vhost).access;
    return a.security.enabled || (a.token.enabled && a.token.require.play) || (a.hooks.enabled && (a.hooks.urls.on_play.length > 0 || a.hooks.urls.on_stop.length > 0));
  }

  async authorise(r: DoorRequest): Promise<Verdict> {
    const v = this.deps.vhost(r.name.vhost);
    const c = this.of(v);
    const label = `${r.action} ${r.name.app}/${r.name.stream} from ${r.ip} over ${r.protocol}`;
    const deny = (status: 401 | 403, step: string, why: string): Verdict => {
      this.deps.log.warn(`access: ${label} denied by ${step}: ${why}`);
      return { ok: false, status };
    };
    const refused = c.security.check(r.action, r.ip);
    if (refused) return deny(403, 'security', refused);
    const token = r.query.get('token') ?? r.bearer;
    if (c.token.required(r.action)) {
      const why = await c.token.check(token, r.action, r.name);
      if (why) return deny(token ? 403 : 401, 'token', why);
    } else if (r.action === 'publish' && !c.publish.allowed(r.ip, r.query.get('secret'))) {
      return deny(403, 'publish allow/secret', 'address not allowed and no valid secret');
    }
    const clientId = r.clientId ?? newClientId();
    const start: HookEvent = r.action === 'publish' ? 'on_publish' : 'on_play';
    const key = this.orderKey(r, clientId);
    const body = this.hookBody(start, r, clientId);
    if (!(await this.hooks.call(v.access.hooks, start, key, body))) return deny(403, `http_hooks ${start}`, 'see the hook line above');
    if (r.action === 'publish') this.publishers.set(key, body);
    let ended = false;
    return {
      ok: true,
      clientId,
      end: () => {
        if (ended) return;
        ended = true;
        if (this.publishers.get(key) === body) {
          this.publishers.delete(key);
          this.rememberUnpublished(key, body);
        }
        const stop: HookEvent = r.action === 'publish' ? 'on_unpublish' : 'on_stop';
        void this.hooks.call(this.deps.vhost(r.name.vhost).access.hooks, stop, key, { ...body, action: stop });
      },
    };
  }

  /**
   * SRS's on_hls, a notification per segment cut, in order with the stream's on_publish and
   * on_unpublish. Segments live in memory here: `file` and `m3u8` are empty, `url` and `m3u8_url`
   * are the paths players fetch.
   */
  hlsSegment(name: StreamName, seg: { seq: number; durationS: number }, streamId: string): void {
    const hooks = this.deps.vhost(name.vhost).access.hooks;
    if (!hooks.enabled || hooks.urls.on_hls.length === 0) return;
    const key = `pub:${name.vhost}/${name.app}/${name.stream}`;
    const pub = this.publishers.get(key) ?? { ...this.ids(), client_id: '', ip: '', vhost: name.vhost, app: name.app, tcUrl: '', stream: name.stream, param: '' };
    void this.hooks.call(hooks, 'on_hls', key, {
      ...pub, action: 'on_hls', duration: seg.durationS, cwd: process.cwd(), file: '', url: `${name.stream}-${seg.seq}.ts`,
      m3u8: '', m3u8_url: `${name.app}/${name.stream}.m3u8`, seq_no: seg.seq, stream_url: `/${name.app}/${name.stream}`, stream_id: streamId,
    });
  }

  /** SRS's on_dvr, a notification once per finished recording, in order with the stream's on_publish. */
  /** A session plan's file is finished after on_unpublish: its on_dvr still carries the publisher's fields. */
  private rememberUnpublished(key: string, body: Record<string, unknown>): void {
    this.unpublished.delete(key);
    this.unpublished.set(key, body);
    if (this.unpublished.size > MAX_UNPUBLISHED_BODIES) this.unpublished.delete(this.unpublished.keys().next().value!);
  }

  dvrFile(name: StreamName, file: string, streamId: string, publisher: { id: string; ip: string; tcUrl: string } | null): void {
    const hooks = this.deps.vhost(name.vhost).access.hooks;
    if (!hooks.enabled || hooks.urls.on_dvr.length === 0) return;
    const key = `pub:${name.vhost}/${name.app}/${name.stream}`;
    const pub = this.publishers.get(key) ?? this.unpublished.get(key) ?? { ...this.ids(), client_id: publisher?.id ?? '', ip: publisher?.ip ?? '', vhost: name.vhost, app: name.app, tcUrl: publisher?.tcUrl ?? '', stream: name.stream, param: '' };
    void this.hooks.call(hooks, 'on_dvr', key, onDvrBody(pub, name, file, streamId));
  }

  /** RTMP's on_connect: allowed or not (the connection is closed then). */
  async connect(c: { vhost: string; app: string; ip: string; tcUrl: string; pageUrl: string; clientId: string }): Promise<boolean> {
    const hooks = this.deps.vhost(c.vhost).access.hooks;
    const ok = await this.hooks.call(hooks, 'on_connect', `conn:${c.clientId}`, {
      ...this.ids(), action: 'on_connect', client_id: c.clientId, ip: c.ip, vhost: c.vhost, app: c.app, tcUrl: c.tcUrl, pageUrl: c.pageUrl,
    });
    if (!ok) this.deps.log.warn(`access: rtmp connect to ${c.app} from ${c.ip} denied by http_hooks on_connect`);
    return ok;
  }

  /** RTMP's on_close: a notification, after the connection's on_connect. */
  closed(c: { vhost: string; app: string; ip: string; clientId: string; sendBytes: number; recvBytes: number }): void {
    const hooks = this.deps.vhost(c.vhost).access.hooks;
    void this.hooks.call(hooks, 'on_close', `conn:${c.clientId}`, {
      ...this.ids(), action: 'on_close', client_id: c.clientId, ip: c.ip, vhost: c.vhost, app: c.app, send_bytes: c.sendBytes, recv_bytes: c.recvBytes,
    });
  }

  close(): void {
    this.hls.close();
    this.uploads.close();
  }

  /** Publish events are ordered per stream (one publisher at a time); play events per client. */
  private orderKey(r: DoorRequest, clientId: string): string {
    return r.action === 'publish' ? `pub:${r.name.vhost}/${r.name.app}/${r.name.stream}` : `play:${clientId}`;
  }

  private ids(): { server_id: string; service_id: string } {
    return { server_id: this.deps.serverId, service_id: this.deps.serviceId };
  }

  /** SRS 5's body for on_publish/on_unpublish/on_play/on_stop, field for field. */
  private hookBody(action: HookEvent, r: DoorRequest, clientId: string): Record<string, unknown> {
    const q = r.query.toString();
    const body: Record<string, unknown> = {
      ...this.ids(),
      action,
      client_id: clientId,
      ip: r.ip,
      vhost: r.name.vhost,
      app: r.name.app,
      tcUrl: r.tcUrl,
      stream: r.name.stream,
      param: q ? `?${q}` : '',
    };
    if (r.action === 'play') body.pageUrl = r.pageUrl;
    body.stream_url = `/${r.name.app}/${r.name.stream}`;
    body.stream_id = r.streamId ?? '';
    return body;
  }
}

/** SRS's client ids are short random strings (its context ids): the same shape here. */
export function newClientId(): string {
  return randomBytes(6).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, 'x');
}
