import type { Client } from '../live/types.js';
import type { Source } from '../live/source.js';
import type { VhostConfig } from '../config/index.js';
import { audioInfo, videoInfo } from './codec.js';

/**
 * SRS's JSON shapes (srs_app_statistic.cpp, as /api/v1/streams/ and /api/v1/clients/ answer
 * them), so tools and consoles written for SRS read streamgate unchanged. Field names and
 * types are SRS's, odd ones included (a client's `stream` is the stream's id, `alive` is in
 * seconds, `live_ms` is a wall-clock time).
 */

export interface Kbps {
  recv_30s: number;
  send_30s: number;
}

/** SRS's ids are short strings; ours are the hub's ids, and a vhost's is derived from its name. */
export function vhostId(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return `vid-${(h >>> 0).toString(36)}`;
}

export function streamJson(s: Source, clients: number, now: number) {
  const url = `/${s.name.app}/${s.name.stream}`;
  return {
    id: s.id,
    name: s.name.stream,
    vhost: vhostId(s.name.vhost),
    app: s.name.app,
    tcUrl: s.publisher?.tcUrl || `rtmp://${s.name.vhost}/${s.name.app}`,
    url,
    live_ms: s.createdAt,
    clients,
    frames: s.frames,
    send_bytes: s.send.total,
    recv_bytes: s.recv.total,
    kbps: { recv_30s: s.recv.kbps(now), send_30s: s.send.kbps(now) } satisfies Kbps,
    publish: { active: !s.ended && s.publisher !== null, cid: s.publisher?.id ?? '' },
    video: s.hasVideo ? videoInfo(s) : null,
    audio: s.hasAudio ? audioInfo(s) : null,
  };
}

export function clientJson(c: Client, streamId: string, kbps: Kbps, now: number) {
  return {
    id: c.id,
    vhost: vhostId(c.vhost),
    stream: streamId,
    ip: c.ip,
    pageUrl: c.pageUrl,
    swfUrl: '',
    tcUrl: c.tcUrl,
    url: c.url,
    name: c.stream,
    type: c.type,
    publish: c.publish,
    alive: Math.round((now - c.since) / 10) / 100,
    send_bytes: c.sendBytes(),
    recv_bytes: c.recvBytes(),
    kbps,
  };
}

export function vhostJson(v: VhostConfig, streams: Source[], clients: number, now: number) {
  let send = 0;
  let recv = 0;
  let sendKbps = 0;
  let recvKbps = 0;
  for (const s of streams) {
    send += s.send.total;
    recv += s.recv.total;
    sendKbps += s.send.kbps(now);
    recvKbps += s.recv.kbps(now);
  }
  return {
    id: vhostId(v.name),
    name: v.name,
    enabled: v.enabled,
    clients,
    streams: streams.length,
    send_bytes: send,
    recv_bytes: recv,
    kbps: { recv_30s: recvKbps, send_30s: sendKbps } satisfies Kbps,
    hls: { enabled: v.hls.enabled },
  };
}

const SAMPLE_EVERY_MS = 5_000;
const WINDOW_MS = 30_000;

/**
 * Per-client kbps over about 30 s, from byte counters sampled when the API is read: no timer
 * and no per-packet cost. Before a sample 30 s old exists, the rate since the client joined.
 */
export class ClientRates {
  private readonly samples = new Map<string, { t: number; sent: number; recv: number }[]>();

  kbps(c: Client, now: number): Kbps {
    let list = this.samples.get(c.id);
    if (!list) {
      list = [{ t: c.since, sent: 0, recv: 0 }];
      this.samples.set(c.id, list);
    }
    const sent = c.sendBytes();
    const recv = c.recvBytes();
    if (now - list[list.length - 1].t >= SAMPLE_EVERY_MS) list.push({ t: now, sent, recv });
    while (list.length > 1 && now - list[1].t >= WINDOW_MS) list.shift();
    const base = list[0];
    const ms = Math.max(1, now - base.t);
    return { recv_30s: Math.round(((recv - base.recv) * 8) / ms), send_30s: Math.round(((sent - base.sent) * 8) / ms) };
  }

  /** Forgets clients that are gone, so the map is bounded by the live client count. */
  prune(live: Set<string>): void {
    for (const id of this.samples.keys()) if (!live.has(id)) this.samples.delete(id);
  }
}
