import http from 'node:http';
import https from 'node:https';
import { FlvDemuxer } from '../media/flv/demuxer.js';
import { CountingClient } from '../live/client.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import type { StreamName } from '../live/types.js';
import type { VhostConfig } from '../config/index.js';
import type { Logger } from '../log.js';

/**
 * Edge pull: a player asks for a stream nobody publishes here, the vhost names an HTTP-FLV
 * origin, so the gateway opens one request to it and fans the stream out to every player.
 * The upstream closes `idle_timeout` after the last player leaves.
 *
 * SRS answers a play of an absent stream by holding the connection without a status line
 * (SRS #1134, #2253): the wait for the response head is bounded by connect_timeout, and
 * silence counts as "no such stream".
 */
export interface EdgeDeps {
  hub: Hub;
  log: Logger;
  vhost: (name: string) => VhostConfig;
}

export function edgeResolver(deps: EdgeDeps): (name: StreamName) => Promise<Source | undefined> {
  return (name) => pull(name, deps);
}

function pull(name: StreamName, deps: EdgeDeps): Promise<Source | undefined> {
  const edge = deps.vhost(name.vhost).edge;
  if (!edge.origin) return Promise.resolve(undefined);
  const url = new URL(`${edge.origin.pathname.replace(/\/$/, '')}/${name.app}/${name.stream}.flv`, edge.origin);
  return new Promise((resolve) => new EdgePull(name, url, edge, deps, resolve));
}

/** One upstream request and the source it mounts; resolves once with the source or undefined. */
class EdgePull {
  private settled = false;
  private source: Source | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly headTimer: NodeJS.Timeout;
  private readonly req: http.ClientRequest;
  private readonly label: string;

  constructor(
    private readonly name: StreamName,
    private readonly url: URL,
    private readonly edge: VhostConfig['edge'],
    private readonly deps: EdgeDeps,
    private readonly resolve: (s: Source | undefined) => void,
  ) {
    this.label = `${name.app}/${name.stream}`;
    const get = url.protocol === 'https:' ? https.get : http.get;
    this.req = get(url, { headers: { 'User-Agent': 'streamgate-edge', Accept: 'video/x-flv' }, agent: false });
    this.headTimer = setTimeout(() => {
      deps.log.warn(`edge ${this.label}: ${url.origin} sent no response within ${edge.connectTimeoutMs} ms, answering 404`);
      this.req.destroy();
      this.settle(undefined);
    }, edge.connectTimeoutMs);
    this.req.on('error', (err) => {
      if (!this.settled) deps.log.warn(`edge ${this.label}: ${url.origin} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      this.settle(undefined);
      this.source?.end('unpublished');
    });
    this.req.on('response', (res) => this.response(res));
  }

  private settle(s: Source | undefined): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.headTimer);
    this.resolve(s);
  }

  private response(res: http.IncomingMessage): void {
    if (res.statusCode !== 200) {
      res.resume();
      this.settle(undefined);
      return;
    }
    const { hub } = this.deps;
    const client = new CountingClient(hub, {
      type: 'edge-pull',
      ip: this.url.hostname,
      name: this.name,
      url: this.url.href,
      tcUrl: this.url.origin,
      publish: true,
      kick: () => this.req.destroy(),
    });
    const demuxer = new FlvDemuxer();
    const finish = (why: string) => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      hub.removeClient(client.id);
      if (this.source && !this.source.ended) {
        this.deps.log.info(`edge ${this.label}: upstream closed (${why})`);
        this.source.end('unpublished');
      }
      this.settle(undefined);
    };
    res.on('data', (chunk: Buffer) => {
      client.received += chunk.length;
      let packets;
      try {
        packets = demuxer.push(chunk);
      } catch (err) {
        this.deps.log.warn(`edge ${this.label}: bad FLV from ${this.url.origin}: ${(err as Error).message}`);
        this.req.destroy();
        finish('malformed FLV');
        return;
      }
      if (!this.source && demuxer.header && !this.mount(client, demuxer.header, finish)) return;
      const source = this.source;
      if (source) {
        for (const p of packets) source.push(p);
        // Players join once the stream's codecs are known, so the FLV header flags are right.
        if (source.videoHeader || source.audioHeader || client.received > 64 * 1024) this.settle(source);
      }
    });
    res.on('end', () => finish('end of stream'));
    res.on('error', () => finish('connection error'));
    res.on('close', () => finish('connection closed'));
  }

  /** Publishes the pulled stream in the hub; false (request ended) when the name is taken meanwhile. */
  private mount(client: CountingClient, header: { hasAudio: boolean; hasVideo: boolean }, finish: (why: string) => void): boolean {
    const { hub, log } = this.deps;
    let source: Source;
    try {
      source = hub.publish(this.name, client);
    } catch {
      this.req.destroy();
      this.settle(undefined);
      return false;
    }
    this.source = source;
    hub.addClient(client);
    source.declared = { audio: header.hasAudio, video: header.hasVideo };
    log.info(`edge ${this.label}: pulling from ${this.url.href}`);
    source.on('idle', () => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => {
        if (source.playerCount === 0) {
          log.info(`edge ${this.label}: no players for ${this.edge.idleTimeoutMs} ms, closing the upstream`);
          this.req.destroy();
          finish('idle');
        }
      }, this.edge.idleTimeoutMs);
    });
    source.once('end', () => this.req.destroy());
    // If the player that asked is gone before it subscribes, the same idle rule applies.
    source.emit('idle');
    return true;
  }
}
