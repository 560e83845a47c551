import net from 'node:net';
import { decodeAmf0All, encodeAmf0, type AmfObject, type AmfValue } from '../../src/ingest/rtmp/amf0.js';
import { ChunkReader, ChunkWriter, MSG_COMMAND_AMF0, MSG_DATA_AMF0, MSG_SET_CHUNK_SIZE, type OutMessage, type RtmpMessage } from '../../src/ingest/rtmp/chunk.js';
import { HANDSHAKE_BYTES } from '../../src/ingest/rtmp/handshake.js';

/**
 * A bare RTMP client over a raw socket, for what ffmpeg cannot be made to do: send garbage in
 * the middle of a publish, or play without ever reading. It speaks the simple handshake and the
 * same commands ffmpeg sends, and keeps every message and onStatus code it receives.
 */
export class RtmpTestClient {
  readonly socket: net.Socket;
  readonly messages: RtmpMessage[] = [];
  readonly statuses: string[] = [];
  readonly closed: Promise<void>;
  private readonly reader = new ChunkReader();
  readonly writer = new ChunkWriter();
  private handshaken = false;
  private hsBuf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private txn = 1;
  isClosed = false;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => {
      this.isClosed = true;
      this.wake();
      resolve();
    }));
    const c0c1 = Buffer.alloc(1 + HANDSHAKE_BYTES);
    c0c1[0] = 3;
    this.socket.write(c0c1);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private onData(d: Buffer): void {
    if (!this.handshaken) {
      this.hsBuf = Buffer.concat([this.hsBuf, d]);
      if (this.hsBuf.length < 1 + 2 * HANDSHAKE_BYTES) return;
      // C2 echoes S1.
      this.socket.write(this.hsBuf.subarray(1, 1 + HANDSHAKE_BYTES));
      d = this.hsBuf.subarray(1 + 2 * HANDSHAKE_BYTES);
      this.handshaken = true;
      this.wake();
    }
    for (const m of this.reader.push(d)) {
      this.messages.push(m);
      if (m.type === MSG_COMMAND_AMF0) {
        const v = decodeAmf0All(m.payload);
        if (v[0] === 'onStatus') this.statuses.push(String((v[3] as AmfObject).code));
      }
    }
    this.wake();
  }

  /** Resolves when `fn` holds, rejects after `timeoutMs` or when the connection closes first. */
  async until(what: string, fn: () => boolean, timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!fn()) {
      if (this.isClosed) throw new Error(`connection closed while waiting for ${what}; statuses ${this.statuses.join(',')}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(msgs: OutMessage[]): void {
    this.socket.write(this.writer.write(msgs));
  }

  command(name: string, streamId: number, ...args: AmfValue[]): void {
    this.send([{ csid: 3, type: MSG_COMMAND_AMF0, streamId, timestamp: 0, payload: encodeAmf0(name, this.txn++, ...args) }]);
  }

  async ready(): Promise<void> {
    await this.until('handshake', () => this.handshaken);
  }

  /** Handshake, connect to `app`, createStream: what every publish and play begins with. */
  async open(app: string, tcUrl = `rtmp://127.0.0.1/${app}`): Promise<void> {
    await this.ready();
    const size = Buffer.alloc(4);
    size.writeUInt32BE(4096);
    this.send([{ csid: 2, type: MSG_SET_CHUNK_SIZE, streamId: 0, timestamp: 0, payload: size }]);
    this.writer.chunkSize = 4096;
    this.command('connect', 0, { app, tcUrl, flashVer: 'FMLE/3.0', objectEncoding: 0 });
    this.command('createStream', 0, null);
    await this.until('createStream result', () => this.results() >= 2);
  }

  private results(): number {
    return this.messages.filter((m) => m.type === MSG_COMMAND_AMF0 && decodeAmf0All(m.payload)[0] === '_result').length;
  }

  async publish(app: string, stream: string): Promise<void> {
    await this.open(app);
    this.command('publish', 1, null, stream, 'live');
    await this.until('a publish status', () => this.statuses.length > 0);
  }

  async play(app: string, stream: string): Promise<void> {
    await this.open(app);
    this.command('play', 1, null, stream, -2);
  }

  metadata(props: AmfObject): void {
    this.send([{ csid: 4, type: MSG_DATA_AMF0, streamId: 1, timestamp: 0, payload: encodeAmf0('@setDataFrame', 'onMetaData', props) }]);
  }

  /** FLV tag bodies as audio (8) / video (9) messages on stream 1. */
  media(type: number, timestamp: number, body: Buffer): void {
    this.send([{ csid: type === 8 ? 4 : 6, type, streamId: 1, timestamp, payload: body }]);
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---- attacks ---------------------------------------------------------------------------------------

export interface UnfinishedFloodOptions {
  /** The chunk size announced with Set Chunk Size before anything else. */
  chunkSize: number;
  /** Messages opened at once, each on its own chunk stream (at most 60). */
  streams: number;
  /** The length each message declares; none is ever finished. */
  messageBytes: number;
  /** Stop after this many bytes written (kept below what would finish a message). */
  maxBytes: number;
  timeoutMs: number;
}

export interface FloodResult {
  /** Bytes the socket accepted. */
  sent: number;
  /** The server ended the connection before the attacker stopped. */
  closedByServer: boolean;
}

/**
 * One attacking connection: handshake, Set Chunk Size, then `streams` messages of `messageBytes`
 * opened on chunk streams 3.. and fed one chunk each in turn, never finished: the shape of the
 * unfinished-message memory attack. Bounded by `maxBytes` and `timeoutMs`.
 */
export function unfinishedFlood(port: number, o: UnfinishedFloodOptions): Promise<FloodResult> {
  if (o.streams > 60) throw new RangeError('one-byte basic headers only: at most 60 chunk streams');
  const payloadLimit = Math.min(o.maxBytes, (o.messageBytes - 1) * o.streams);
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let hs = Buffer.alloc(0);
    let sent = 0;
    let payloadSent = 0;
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ sent, closedByServer });
    };
    const timer = setTimeout(() => finish(false), o.timeoutMs);
    sock.on('error', () => undefined);
    sock.on('close', () => finish(true));
    const c0c1 = Buffer.alloc(1 + HANDSHAKE_BYTES);
    c0c1[0] = 3;
    sock.write(c0c1);
    // One round: a type-3 chunk (basic header, chunkSize bytes) on every chunk stream, repeated up to ~64 KiB.
    const round = Buffer.concat(Array.from({ length: o.streams }, (_, i) => Buffer.concat([Buffer.from([0xc0 | (3 + i)]), Buffer.alloc(o.chunkSize, 0x55)])));
    const block = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(65536 / round.length)) }, () => round));
    const perBlock = (block.length / round.length) * o.streams * o.chunkSize;
    const pump = () => {
      while (!done && payloadSent + perBlock <= payloadLimit) {
        sent += block.length;
        payloadSent += perBlock;
        if (!sock.write(block)) return;
      }
      if (!done && payloadSent + perBlock > payloadLimit) finish(false);
    };
    sock.on('drain', pump);
    sock.on('data', (d: Buffer) => {
      if (hs === null || hs.length >= 1 + 2 * HANDSHAKE_BYTES) return;
      hs = Buffer.concat([hs, d]);
      if (hs.length < 1 + 2 * HANDSHAKE_BYTES) return;
      const size = Buffer.alloc(4);
      size.writeUInt32BE(o.chunkSize);
      const setSize = Buffer.concat([Buffer.from([0x02, 0, 0, 0, 0, 0, 4, MSG_SET_CHUNK_SIZE, 0, 0, 0, 0]), size]);
      // Each message opens with a type-0 header and its first chunk.
      const opens = Array.from({ length: o.streams }, (_, i) => {
        const h = Buffer.alloc(12);
        h[0] = 3 + i;
        h.writeUIntBE(o.messageBytes, 4, 3);
        h[7] = 9;
        h.writeUInt32LE(1, 8);
        return Buffer.concat([h, Buffer.alloc(o.chunkSize, 0x55)]);
      });
      const first = Buffer.concat([hs.subarray(1, 1 + HANDSHAKE_BYTES), setSize, ...opens]);
      sent += first.length;
      payloadSent += o.streams * o.chunkSize;
      if (sock.write(first)) pump();
    });
  });
}
