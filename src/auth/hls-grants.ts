import type { DoorRequest, Grant, Verdict } from './policy.js';

/**
 * An HLS viewer is a series of GETs, not a connection: the chain runs once per viewer session
 * (address, User-Agent, stream), on its first request, and the session stays granted while it
 * keeps fetching. A session idle this long has stopped watching: its on_stop is sent.
 */
export const HLS_GRANT_IDLE_MS = 20_000;
/** Sessions remembered at most; past it a viewer is asked again on every playlist (bounded memory). */
export const MAX_HLS_GRANTS = 10_000;

/** `stream-12` (a segment of `stream`): SRS's default segment name; fMP4 adds `stream-12.3` (a part) and `stream-i12` (an init segment). */
export const SEGMENT = /^(.+)-(?:\d{1,15}(?:\.\d{1,4})?|i\d{1,15})$/;

export class HlsGrants {
  private readonly granted = new Map<string, { grant: Grant; seen: number }>();
  private readonly pending = new Map<string, Promise<Verdict>>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly authorise: (r: DoorRequest) => Promise<Verdict>) {}

  /** The session a playlist or segment request belongs to. */
  static key(vhost: string, app: string, stream: string, ext: string, ip: string, agent: string, credential = '\n\n'): string {
    const base = ext === 'ts' || ext === 'm4s' ? (SEGMENT.exec(stream)?.[1] ?? stream) : stream;
    return `${vhost}/${app}/${base}\n${ip}\n${agent}\n${credential}`;
  }

  /** Sessions remembered now. */
  get size(): number {
    return this.granted.size;
  }

  /** Whether the session is granted now (the front door's synchronous question); refreshes it. */
  has(key: string): boolean {
    const g = this.granted.get(key);
    if (!g) return false;
    g.seen = Date.now();
    return true;
  }

  /** Runs the chain for a session not granted yet; concurrent requests of one session share the run. */
  async check(key: string, r: DoorRequest): Promise<Verdict> {
    const g = this.granted.get(key);
    if (g) {
      g.seen = Date.now();
      return g.grant;
    }
    let p = this.pending.get(key);
    if (!p) {
      p = this.authorise(r);
      this.pending.set(key, p);
      void p.finally(() => this.pending.delete(key));
      const v = await p;
      if (v.ok && this.granted.size < MAX_HLS_GRANTS) {
        this.granted.set(key, { grant: v, seen: Date.now() });
        this.arm();
      } else if (v.ok) {
        v.end();
      }
      return v;
    }
    return p;
  }

  private arm(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(), HLS_GRANT_IDLE_MS / 4);
    this.sweeper.unref();
  }

  private sweep(): void {
    const old = Date.now() - HLS_GRANT_IDLE_MS;
    for (const [k, g] of this.granted) {
      if (g.seen >= old) continue;
      this.granted.delete(k);
      g.grant.end();
    }
    if (this.granted.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const g of this.granted.values()) g.grant.end();
    this.granted.clear();
  }
}
