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
  const { hub, log } = deps;
  const edge = deps.vhost(name.vhost).edge;
  if (!edge.origin) return Promise.resolve(undefined);
  const url = new URL(`${edge.origin.pathname.replace(/\/$/, '')}/${name.app}/${name.stream}.flv`, edge.origin);
  const label = `${name.app}/${name.stream}`;
  return new Promise((resolve) => {
    let settled = false;
    let source: Source | null = null;
    let idleTimer: NodeJS.Timeout | null = null;
    const settle = (s: Source | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(headTimer);
      resolve(s);
    };
    const get = url.protocol === 'https:' ? https.get : http.get;
    const req = get(url, { headers: { 'User-Agent': 'streamgate-edge', Accept: 'video/x-flv' }, agent: false });
    const headTimer = setTimeout(() => {
      log.warn(`edge ${label}: ${url.origin} sent no response within ${edge.connectTimeoutMs} ms, answering 404`);
      req.destroy();
      settle(undefined);
    }, edge.connectTimeoutMs);
    req.on('error', (err) => {
      if (!settled) log.warn(`edge ${label}: ${url.origin} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      settle(undefined);
      source?.end('unpublished');
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        settle(undefined);
        return;
      }
      const client = new CountingClient(hub, {
        type: 'edge-pull',
        ip: url.hostname,
        name,
        url: url.href,
        tcUrl: url.origin,
        publish: true,
        kick: () => req.destroy(),
      });
      const demuxer = new FlvDemuxer();
      const finish = (why: string) => {
        if (idleTimer) clearTimeout(idleTimer);
        hub.removeClient(client.id);
        if (source && !source.ended) {
          log.info(`edge ${label}: upstream closed (${why})`);
          source.end('unpublished');
        }
        settle(undefined);
      };
      res.on('data', (chunk: Buffer) => {
        client.received += chunk.length;
        let packets;
        try {
          packets = demuxer.push(chunk);
        } catch (err) {
          log.warn(`edge ${label}: bad FLV from ${url.origin}: ${(err as Error).message}`);
          req.destroy();
          finish('malformed FLV');
          return;
        }
        if (!source && demuxer.header) {
          try {
            source = hub.publish(name, client);
          } catch {
            req.destroy();
            settle(undefined);
            return;
          }
          hub.addClient(client);
          source.declared = { audio: demuxer.header.hasAudio, video: demuxer.header.hasVideo };
          log.info(`edge ${label}: pulling from ${url.href}`);
          source.on('idle', () => {
            if (idleTimer) clearTimeout(idleTimer);
            idleTimer = setTimeout(() => {
              if (source && source.playerCount === 0) {
                log.info(`edge ${label}: no players for ${edge.idleTimeoutMs} ms, closing the upstream`);
                req.destroy();
                finish('idle');
              }
            }, edge.idleTimeoutMs);
          });
          source.once('end', () => req.destroy());
          // If the player that asked is gone before it subscribes, the same idle rule applies.
          source.emit('idle');
        }
        if (source) {
          for (const p of packets) source.push(p);
          // Players join once the stream's codecs are known, so the FLV header flags are right.
          if (source.videoHeader || source.audioHeader || client.received > 64 * 1024) settle(source);
        }
      });
      res.on('end', () => finish('end of stream'));
      res.on('error', () => finish('connection error'));
      res.on('close', () => finish('connection closed'));
    });
  });
}
