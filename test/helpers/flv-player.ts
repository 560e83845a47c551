import net from 'node:net';
import { FlvDemuxer } from '../../src/media/flv/demuxer.js';
import type { MediaPacket } from '../../src/media/packet.js';

/**
 * A minimal HTTP-FLV player over a raw socket: what mpegts.js or ffplay would receive, with
 * arrival times. `paused` makes it a player that never reads (its socket buffer fills up).
 */
export class FlvPlayer {
  status = 0;
  headers: Record<string, string> = {};
  packets: { pkt: MediaPacket; at: number }[] = [];
  header: { hasAudio: boolean; hasVideo: boolean } | null = null;
  bytes = 0;
  firstByteAt = 0;
  ended = false;
  error: Error | null = null;
  readonly startedAt = Date.now();
  readonly socket: net.Socket;
  readonly done: Promise<void>;
  private head: Buffer = Buffer.alloc(0);
  private pending: Buffer = Buffer.alloc(0);
  private chunkLeft = 0;
  /** The zero-length chunk that ends a chunked body cleanly arrived. */
  lastChunk = false;
  private readonly demuxer = new FlvDemuxer();

  constructor(port: number, path: string, opts: { paused?: boolean; headers?: Record<string, string> } = {}) {
    this.socket = net.connect(port, '127.0.0.1');
    const extra = Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUser-Agent: flv-player-test\r\n${extra}\r\n`);
    if (opts.paused) this.socket.pause();
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.done = new Promise((resolve) => {
      this.socket.on('end', () => {
        this.ended = true;
        resolve();
      });
      this.socket.on('close', () => resolve());
      this.socket.on('error', (e) => {
        this.error = e;
        resolve();
      });
    });
  }

  private onData(d: Buffer): void {
    if (!this.firstByteAt) this.firstByteAt = Date.now();
    this.bytes += d.length;
    if (this.status === 0) {
      this.head = Buffer.concat([this.head, d]);
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.head.subarray(0, end).toString('latin1').split('\r\n');
      this.status = Number(lines[0].split(' ')[1]);
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        this.headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      d = this.head.subarray(end + 4);
      if (this.status !== 200) return;
    }
    if (this.status !== 200 || d.length === 0) return;
    const body = this.headers['transfer-encoding'] === 'chunked' ? this.dechunk(d) : d;
    if (body.length === 0) return;
    const now = Date.now();
    for (const pkt of this.demuxer.push(body)) this.packets.push({ pkt, at: now });
    if (!this.header && this.demuxer.header) this.header = { ...this.demuxer.header };
  }

  /** Strips HTTP/1.1 chunk framing (RFC 9112 §7.1); `lastChunk` notes the clean end. */
  private dechunk(d: Buffer): Buffer {
    this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    const out: Buffer[] = [];
    for (;;) {
      if (this.chunkLeft > 0) {
        const n = Math.min(this.chunkLeft, this.pending.length);
        out.push(this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        this.chunkLeft -= n;
        if (this.chunkLeft > 0) break;
        this.chunkLeft = -2; // the CRLF after the data
      }
      if (this.chunkLeft === -2) {
        if (this.pending.length < 2) break;
        this.pending = this.pending.subarray(2);
        this.chunkLeft = 0;
      }
      const eol = this.pending.indexOf('\r\n');
      if (eol < 0) break;
      const size = parseInt(this.pending.subarray(0, eol).toString('latin1'), 16);
      this.pending = this.pending.subarray(eol + 2);
      if (size === 0) {
        this.lastChunk = true;
        break;
      }
      this.chunkLeft = size;
    }
    return Buffer.concat(out);
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  /** The newest media timestamp received (ms), or -1. */
  lastDts(): number {
    for (let i = this.packets.length - 1; i >= 0; i--) if (this.packets[i].pkt.kind !== 'script') return this.packets[i].pkt.dts;
    return -1;
  }

  kinds(): string[] {
    return this.packets.map((p) => (p.pkt.header ? `${p.pkt.kind}-header` : p.pkt.kind));
  }
}
