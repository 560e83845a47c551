import type { Socket } from 'node:net';
import { DEFAULT_VHOST } from '../../config/index.js';
import { clientIp } from '../../net/address.js';
import type { StreamName } from '../../live/types.js';
import { Account, OBJECT_OVERHEAD_BYTES } from '../../limits/budget.js';
import { newClientId, type DoorRequest, type Verdict } from '../../auth/policy.js';
import { AmfError, decodeAmf0All, encodeAmf0, type AmfValue } from './amf0.js';
import {
  ChunkReader, ChunkWriter, MAX_PENDING_BYTES, OUT_CHUNK_SIZE, RtmpError, type OutMessage, type RtmpMessage,
  MSG_ACK, MSG_AUDIO, MSG_COMMAND_AMF0, MSG_COMMAND_AMF3, MSG_DATA_AMF0, MSG_DATA_AMF3, MSG_SET_CHUNK_SIZE,
  MSG_SET_PEER_BANDWIDTH, MSG_USER_CONTROL, MSG_VIDEO, MSG_WINDOW_ACK_SIZE,
} from './chunk.js';
import { hostOf, isObject, readFairly, splitQuery, u16, u32, type RtmpConn, type RtmpDeps, type RtmpLimits } from './conn.js';
import { HANDSHAKE_BYTES, HandshakeError, ServerHandshake } from './handshake.js';
import { RtmpPlay } from './play.js';
import { RtmpPublish } from './publisher.js';

export type { RtmpDeps, RtmpLimits } from './conn.js';

/**
 * A connection that sends nothing for this long before playing, or while publishing, is gone; and
 * one that has connected must publish or play within it (pings alone do not keep it).
 */
export const IDLE_TIMEOUT_MS = 30_000;
/** What the handshake may hold (C0+C1, then C2 and what came with it), charged until it is done. */
const HANDSHAKE_HOLD_BYTES = 2 * (1 + HANDSHAKE_BYTES) + OBJECT_OVERHEAD_BYTES;
/** After a refusal or an end of stream, how long the peer has to read it and hang up. */
const CLOSE_GRACE_MS = 2_000;
/** What we announce as our acknowledgement window and the peer's bandwidth (SRS's values). */
const WINDOW_ACK_SIZE = 2_500_000;
const PEER_BANDWIDTH_DYNAMIC = 2;

const CSID_CONTROL = 2;
const CSID_COMMAND = 3;
const CSID_STATUS = 5;

/** User Control event types (§7.1.7). */
const UC_PING_REQUEST = 6;
const UC_PING_RESPONSE = 7;

/**
 * One RTMP connection: handshake, chunk stream, the NetConnection/NetStream commands an encoder
 * or a player sends (connect, releaseStream, FCPublish, createStream, publish or play, FCUnpublish,
 * deleteStream), then media into the hub or out of it. Anything malformed closes this connection
 * with one log line; nothing it does can hold more than the chunk reader's bounds.
 */
export class RtmpSession implements RtmpConn {
  readonly ip: string;
  private handshake: ServerHandshake | null = new ServerHandshake();
  /** The time by which the connection must have connected, or published or played: one timer. */
  private deadline: NodeJS.Timeout | undefined;
  readonly limits: RtmpLimits;
  /** Pays for what the peer makes us hold: the anonymous pool's until publishing is authorised. */
  private account: Account;
  private readonly reader: ChunkReader;
  private readonly writer = new ChunkWriter(true);
  private connected = false;
  private app = '';
  tcUrl = '';
  pageUrl = '';
  private vhost = DEFAULT_VHOST;
  /** tcUrl and app queries: where `?secret=` and `?vhost=` may be given at connect time. */
  private connectQuery = new URLSearchParams();
  private nextStreamId = 1;
  private readonly publish = new RtmpPublish(this);
  private readonly play = new RtmpPlay(this);
  acquiring = false;
  closing = false;
  /** The connection's id in hook bodies, and its on_connect verdict (publish and play wait on it). */
  private readonly hookId = newClientId();
  private connectAllowed: Promise<boolean> = Promise.resolve(true);
  /** Bytes received, and where the last acknowledgement was sent (§5.4.3). */
  private received = 0;
  private ackedAt = 0;
  private peerWindow = 0;

  constructor(
    readonly socket: Socket,
    readonly deps: RtmpDeps,
  ) {
    this.ip = clientIp(socket.remoteAddress);
    socket.setNoDelay(true);
    this.limits = deps.limits();
    this.account = new Account(deps.pool, this.limits.connectionMemoryBytes);
    this.reader = new ChunkReader(this.account);
    // A deadline, not an idle timer: a client dripping a byte at a time must not stretch it
    // (NGINX's client_header_timeout: the handshake and the connect are this protocol's request head).
    const headerMs = this.limits.headerTimeoutMs;
    this.setDeadline(headerMs, () => (this.handshake ? `handshake not finished within ${headerMs} ms` : `no connect within ${headerMs} ms`));
    if (!this.account.take(HANDSHAKE_HOLD_BYTES)) {
      this.deps.log.warn(`${this.who()}: memory for connections not yet authorised is exhausted, closing`);
      socket.destroy();
    }
    socket.setTimeout(this.limits.idleTimeoutMs);
    socket.on('timeout', () => this.onTimeout());
    readFairly(socket, (d) => {
      try {
        this.onData(d);
      } catch (err) {
        this.fail(err);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.onClose());
  }

  /** Whether a stream is being published or played (the hub ends those on shutdown). */
  get busy(): boolean {
    return this.publish.publication !== null || this.play.playing !== null;
  }

  /** Shutdown: a connection that neither publishes nor plays has nothing to finish. */
  shutdown(): void {
    if (!this.busy) this.socket.destroy();
  }

  /** "rtmp 1.2.3.4 live/a" for log lines: who, and what it publishes (or its app, if any yet). */
  who(): string {
    const what = this.publish.publication?.label ?? this.app;
    return what ? `rtmp ${this.ip} ${what}` : `rtmp ${this.ip}`;
  }

  /** Closes the connection at `ms` from now unless cleared or moved (one timer per connection). */
  private setDeadline(ms: number, why: () => string): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      this.deps.log.warn(`${this.who()}: ${why()}, closing`);
      this.socket.destroy();
    }, ms);
  }

  clearDeadline(): void {
    clearTimeout(this.deadline);
  }

  take(bytes: number): boolean {
    return this.account.take(bytes);
  }

  give(bytes: number): void {
    this.account.give(bytes);
  }

  /** Back from a publish or play: silence counts again, and another must start within the idle time. */
  idleAgain(): void {
    this.socket.setTimeout(this.limits.idleTimeoutMs);
    this.armIdleDeadline();
  }

  /** Connected, or back from a publish or play: it must start another within the idle time. */
  private armIdleDeadline(): void {
    const ms = this.limits.idleTimeoutMs;
    this.setDeadline(ms, () => `neither published nor played within ${ms} ms of connecting`);
  }

  /** Publishing is authorised: unfinished messages are bounded by the stream's own limits, not the anonymous pool. */
  trusted(): void {
    const own = this.account.detach();
    own.limit = MAX_PENDING_BYTES;
    this.reader.moveTo(own);
    this.account = own;
  }

  private onTimeout(): void {
    if (this.closing) {
      this.socket.destroy();
      return;
    }
    this.deps.log.warn(`${this.who()}: nothing received for ${this.limits.idleTimeoutMs} ms ${this.publish.publication ? 'while publishing' : 'before publish or play'}, closing`);
    this.publish.finish('idle timeout');
    this.socket.destroy();
  }

  fail(err: unknown): void {
    if (this.socket.destroyed) return;
    const known = err instanceof RtmpError || err instanceof AmfError || err instanceof HandshakeError;
    const msg = err instanceof Error ? err.message : String(err);
    if (known) this.deps.log.warn(`${this.who()}: ${msg}, closing`);
    else this.deps.log.error(`${this.who()}: internal error: ${msg}, closing`);
    this.publish.finish('malformed RTMP');
    this.socket.destroy();
  }

  private onClose(): void {
    clearTimeout(this.deadline);
    this.play.close();
    this.account.close();
    this.publish.finish('connection closed');
    if (this.connected) this.deps.access.closed({ vhost: this.vhost, app: this.app, ip: this.ip, clientId: this.hookId, sendBytes: this.socket.bytesWritten, recvBytes: this.received });
  }

  // ---- bytes in ----------------------------------------------------------------------------------

  private onData(d: Buffer): void {
    if (this.closing) return;
    this.received += d.length;
    const client = this.publish.publication?.client ?? this.play.playing?.client;
    if (client) client.received += d.length;
    let data = d;
    if (this.handshake) {
      let step = this.handshake.push(d);
      if (step.state === 'reply') {
        this.socket.write(step.reply);
        step = this.handshake.push(Buffer.alloc(0));
      }
      if (step.state !== 'done') return;
      this.handshake = null;
      this.account.give(HANDSHAKE_HOLD_BYTES);
      data = step.rest;
      if (data.length === 0) return;
    }
    for (const msg of this.reader.push(data)) {
      this.onMessage(msg);
      if (this.closing || this.socket.destroyed) return;
    }
    if (this.peerWindow > 0 && this.received - this.ackedAt >= this.peerWindow) {
      this.ackedAt = this.received;
      this.sendControl(MSG_ACK, u32(this.received >>> 0));
    }
  }

  private onMessage(msg: RtmpMessage): void {
    switch (msg.type) {
      case MSG_AUDIO:
      case MSG_VIDEO:
        return this.publish.media(msg);
      case MSG_DATA_AMF0:
        return this.publish.data(msg, msg.payload);
      case MSG_DATA_AMF3:
        // AMF3 data and command messages open with a format byte; ffmpeg and OBS put AMF0 after it.
        return this.publish.data(msg, msg.payload.subarray(1));
      case MSG_COMMAND_AMF0:
        return this.onCommand(msg, decodeAmf0All(msg.payload));
      case MSG_COMMAND_AMF3:
        return this.onCommand(msg, decodeAmf0All(msg.payload.subarray(1)));
      case MSG_WINDOW_ACK_SIZE:
        if (msg.payload.length >= 4) this.peerWindow = msg.payload.readUInt32BE(0);
        return;
      case MSG_USER_CONTROL:
        if (msg.payload.length >= 6 && msg.payload.readUInt16BE(0) === UC_PING_REQUEST) {
          this.sendControl(MSG_USER_CONTROL, Buffer.concat([u16(UC_PING_RESPONSE), msg.payload.subarray(2, 6)]));
        }
        return;
      default:
        // Set Chunk Size and Abort were applied by the reader; acknowledgements, the peer's
        // bandwidth and aggregate messages change nothing here.
        return;
    }
  }

  // ---- commands ----------------------------------------------------------------------------------

  private onCommand(msg: RtmpMessage, values: AmfValue[]): void {
    const [name, txn] = values;
    if (typeof name !== 'string') throw new RtmpError('a command message without a command name');
    const id = typeof txn === 'number' ? txn : 0;
    const args = values.slice(3);
    switch (name) {
      case 'connect':
        return this.onConnect(id, values[2]);
      case 'releaseStream':
      case 'FCPublish':
      case 'FCSubscribe':
        // Flash Media Server leftovers that encoders and players still send; nothing to do.
        return this.result(id, null, undefined);
      case 'createStream':
        return this.result(id, null, this.nextStreamId++);
      case 'publish':
        return this.onPublish(msg.streamId, args[0]);
      case 'play':
        return this.onPlay(msg.streamId, args[0]);
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        return this.onStop(msg.streamId);
      case '_result':
      case '_error':
        // Answers to our own calls: we make none that need one.
        return;
      default:
        // getStreamLength, _checkbw, receiveAudio, …: a call that wants an answer gets _error
        // (clients treat it as "not supported"); a notification (transaction 0) is ignored.
        if (id !== 0) this.command('_error', id, null, { level: 'error', code: 'NetConnection.Call.Failed', description: `${name} is not supported` });
    }
  }

  private onConnect(txn: number, obj: AmfValue): void {
    if (!isObject(obj)) throw new RtmpError('connect without a command object');
    const app = splitQuery(String(obj.app ?? '').replace(/\/+$/, ''));
    this.tcUrl = typeof obj.tcUrl === 'string' ? obj.tcUrl : '';
    this.pageUrl = typeof obj.pageUrl === 'string' ? obj.pageUrl : '';
    const tc = splitQuery(this.tcUrl);
    this.connectQuery = new URLSearchParams([...tc.query, ...app.query]);
    this.app = app.path;
    const vhost = this.connectQuery.get('vhost') ?? hostOf(tc.path);
    this.vhost = this.deps.vhostFor(vhost);
    // A second connect does not buy more time.
    if (!this.connected) this.armIdleDeadline();
    this.connected = true;
    this.connectAllowed = this.deps.access.connect({ vhost: this.vhost, app: this.app, ip: this.ip, tcUrl: this.tcUrl, pageUrl: this.pageUrl, clientId: this.hookId });
    void this.connectAllowed.then((ok) => {
      if (!ok) this.socket.destroy();
    });
    this.sendControl(MSG_WINDOW_ACK_SIZE, u32(WINDOW_ACK_SIZE));
    this.sendControl(MSG_SET_PEER_BANDWIDTH, Buffer.concat([u32(WINDOW_ACK_SIZE), Buffer.from([PEER_BANDWIDTH_DYNAMIC])]));
    this.sendControl(MSG_SET_CHUNK_SIZE, u32(OUT_CHUNK_SIZE));
    this.writer.chunkSize = OUT_CHUNK_SIZE;
    this.result(txn, { fmsVer: 'FMS/3,0,1,123', capabilities: 31 }, {
      level: 'status',
      code: 'NetConnection.Connect.Success',
      description: 'Connection succeeded.',
      objectEncoding: typeof obj.objectEncoding === 'number' ? obj.objectEncoding : 0,
    });
  }

  /** The stream a publish or play names, with its query (`?secret=`) split off. */
  private streamName(raw: AmfValue): { name: StreamName; query: URLSearchParams } {
    if (!this.connected) throw new RtmpError('publish or play before connect');
    const s = splitQuery(typeof raw === 'string' ? raw : '');
    return { name: { vhost: this.vhost, app: this.app, stream: s.path }, query: s.query };
  }

  private onPublish(streamId: number, raw: AmfValue): void {
    if (this.busy || this.acquiring) throw new RtmpError('publish on a connection that already publishes or plays');
    const { name, query } = this.streamName(raw);
    this.publish.start(streamId, name, query);
  }

  private onPlay(streamId: number, raw: AmfValue): void {
    if (this.busy || this.acquiring) throw new RtmpError('play on a connection that already publishes or plays');
    const { name, query } = this.streamName(raw);
    this.play.start(streamId, name, query);
  }

  /** The chain for a publish or play of this connection, after its on_connect. */
  async authorise(action: 'publish' | 'play', name: StreamName, query: URLSearchParams, streamId?: string): Promise<Verdict> {
    if (!(await this.connectAllowed)) return { ok: false, status: 403 };
    const door: DoorRequest = {
      action, name, ip: this.ip, query: new URLSearchParams([...query, ...this.connectQuery]), bearer: null,
      tcUrl: this.tcUrl, pageUrl: this.pageUrl, protocol: 'RTMP', clientId: this.hookId, streamId,
    };
    return this.deps.access.authorise(door);
  }

  private onStop(streamId: number): void {
    if (this.publish.stop(streamId) || this.play.stop()) this.idleAgain();
  }

  // ---- bytes out ---------------------------------------------------------------------------------

  send(msgs: OutMessage[]): void {
    if (this.socket.destroyed) return;
    const buf = this.writer.write(msgs);
    this.socket.write(buf);
    if (this.play.playing) this.play.playing.client.sent += buf.length;
  }

  sendControl(type: number, payload: Buffer): void {
    this.send([{ csid: CSID_CONTROL, type, streamId: 0, timestamp: 0, payload }]);
  }

  private command(name: string, txn: number, ...values: AmfValue[]): void {
    this.send([{ csid: CSID_COMMAND, type: MSG_COMMAND_AMF0, streamId: 0, timestamp: 0, payload: encodeAmf0(name, txn, ...values) }]);
  }

  private result(txn: number, ...values: AmfValue[]): void {
    this.command('_result', txn, ...values);
  }

  status(streamId: number, level: 'status' | 'error', code: string, description: string): void {
    const info = { level, code, description, clientid: 'streamgate' };
    this.send([{ csid: CSID_STATUS, type: MSG_COMMAND_AMF0, streamId, timestamp: 0, payload: encodeAmf0('onStatus', 0, null, info) }]);
  }

  /** Ends the connection after what is queued; a peer that never hangs up is cut after a grace period. */
  closeAfterFlush(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.setTimeout(CLOSE_GRACE_MS);
    this.socket.end();
  }
}
