import type { Hub } from '../live/hub.js';
import { CountingClient } from '../live/client.js';
import { streamKey, type StreamName } from '../live/types.js';
import type { HlsViewer } from './hls.js';

/**
 * An HLS viewer is a series of GETs, not a connection. One (address, User-Agent, stream) that has
 * fetched nothing for this long has stopped watching and leaves the API's client list.
 */
const HLS_SESSION_IDLE_MS = 20_000;
/** Viewers listed at most; beyond this new ones are served but not listed (bounded memory). */
const MAX_HLS_SESSIONS = 10_000;

/** The API's `hls-play` listing of HLS viewers (TS and fMP4 alike). */
export class HlsSessions {
  private readonly sessions = new Map<string, { client: CountingClient; seen: number }>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly hub: Hub) {}

  /** Lists the viewer in the API as SRS's `hls-play`, counting the segment bytes it fetched. */
  touch(name: StreamName, viewer: HlsViewer, bytes: number): void {
    const ip = viewer.ip;
    const key = (viewer.sessionKey ??= `${streamKey(name)}\n${ip}\n${viewer.agent}`);
    let s = this.sessions.get(key);
    if (!s) {
      if (this.sessions.size >= MAX_HLS_SESSIONS) return;
      const client = new CountingClient(this.hub, {
        type: 'hls-play',
        ip,
        // A copy: `name` may be a request object the front door keeps.
        name: { vhost: name.vhost, app: name.app, stream: name.stream },
        url: `/${name.app}/${name.stream}.m3u8`,
        tcUrl: `http://${viewer.host}/${name.app}`,
        pageUrl: viewer.referer,
        publish: false,
        // Nothing to cut: the listing goes, and comes back if the viewer keeps fetching.
        kick: () => this.forget(key),
      });
      s = { client, seen: 0 };
      this.sessions.set(key, s);
      this.hub.addClient(client);
      if (!this.sweeper) {
        this.sweeper = setInterval(() => this.sweep(), HLS_SESSION_IDLE_MS / 4);
        this.sweeper.unref();
      }
    }
    s.seen = Date.now();
    s.client.sent += bytes;
  }

  private forget(key: string): void {
    const s = this.sessions.get(key);
    if (!s) return;
    this.sessions.delete(key);
    this.hub.removeClient(s.client.id);
  }

  private sweep(): void {
    const old = Date.now() - HLS_SESSION_IDLE_MS;
    for (const [k, s] of this.sessions) if (s.seen < old) this.forget(k);
    if (this.sessions.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const k of [...this.sessions.keys()]) this.forget(k);
  }
}
