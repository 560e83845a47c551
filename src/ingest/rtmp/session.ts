import type { Socket } from 'node:net';
import { DEFAULT_VHOST } from '../../config/index.js';
import { GatewayError } from '../../errors.js';
import { CountingClient, clientIp } from '../../live/client.js';
import type { Consumer } from '../../live/consumer.js';
import type { Hub } from '../../live/hub.js';
import type { StreamName } from '../../live/types.js';
import type { Logger } from '../../log.js';
import { Account, OBJECT_OVERHEAD_BYTES, type Budget } from '../../limits/budget.js';
import type { Source } from '../../live/source.js';
import { packetFromTag, TAG_SCRIPT } from '../../media/packet.js';
import { RtmpPlaySink } from '../../outputs/rtmp-play.js';
import { newClientId, type AccessControl, type DoorRequest, type Grant, type Verdict } from '../../auth/policy.js';
import { startPublication, type Publication } from '../publish.js';
import { AmfError, decodeAmf0, decodeAmf0All, EcmaArray, encodeAmf0, type AmfObject, type AmfValue } from './amf0.js';
import {
  ChunkReader, ChunkWriter, MAX_PENDING_BYTES, OUT_CHUNK_SIZE, RtmpError, type OutMessage, type RtmpMessage,
  MSG_ACK, MSG_AUDIO, MSG_COMMAND_AMF0, MSG_COMMAND_AMF3, MSG_DATA_AMF0, MSG_DATA_AMF3, MSG_SET_CHUNK_SIZE,
  MSG_SET_PEER_BANDWIDTH, MSG_USER_CONTROL, MSG_VIDEO, MSG_WINDOW_ACK_SIZE,
} from './chunk.js';
import { HANDSHAKE_BYTES, HandshakeError, ServerHandshake } from './handshake.js';
import { WAITING_PLAYER_BYTES, type PlayWaitRoom } from './play-wait.js';

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
const UC_STREAM_BEGIN = 0;
const UC_PING_REQUEST = 6;
const UC_PING_RESPONSE = 7;

export interface RtmpDeps {
  hub: Hub;
  log: Logger;
  /** The policy chain (src/auth/policy.ts): on_connect, then each publish or play, once. */
  access: AccessControl;
  /** The vhost a connect names, by tcUrl host (an unknown host is the default vhost). */
  vhostFor: (host: string) => string;
  /** The pool that connections not yet authorised draw on (the gateway's budgets.unauthorized). */
  pool: Budget | null;
  /** Read at each new connection, so a reload applies to the next ones. */
  limits: () => RtmpLimits;
  /** Players waiting for a publisher (the listener's). */
  waiting: PlayWaitRoom;
}

export interface RtmpLimits {
  /** The handshake and the connect command must both arrive within this (limits.header_timeout). */
  headerTimeoutMs: number;
  /** Memory one connection may hold before it is authorised to publish (limits.connection_memory). */
  connectionMemoryBytes: number;
  /** Silence before publish or play, and time from connect to publish or play (default IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** How long a play waits for the stream's publisher, by vhost (play.wait_publisher; 0 = not at all). */
  waitPublisherMs: (vhost: string) => number;
}

/** `name?a=b` split at the query, as app and stream names carry one (SRS's `?vhost=`, our `?secret=`). */
function splitQuery(s: string): { path: string; query: URLSearchParams } {
  const q = s.indexOf('?');
  return q < 0 ? { path: s, query: new URLSearchParams() } : { path: s.slice(0, q), query: new URLSearchParams(s.slice(q + 1)) };
}

function isObject(v: AmfValue): v is AmfObject {
  return typeof v === 'object' && v !== null && !(v instanceof Date) && !(v instanceof EcmaArray) && !Array.isArray(v);
}

/**
 * One RTMP connection: handshake, chunk stream, the NetConnection/NetStream commands an encoder
 * or a player sends (connect, releaseStream, FCPublish, createStream, publish or play, FCUnpublish,
 * deleteStream), then media into the hub or out of it. Anything malformed closes this connection
 * with one log line; nothing it does can hold more than the chunk reader's bounds.
 */
export class RtmpSession {
  readonly ip: string;
  private handshake: ServerHandshake | null = new ServerHandshake();
  /** The time by which the connection must have connected, or published or played: one timer. */
  private deadline: NodeJS.Timeout | undefined;
  private readonly limits: RtmpLimits;
  /** Pays for what the peer makes us hold: the anonymous pool's until publishing is authorised. */
  private account: Account;
  private readonly reader: ChunkReader;
  /** Leaves the wait for a publisher (the player went away). */
  private cancelWait: (() => void) | null = null;
  private readonly writer = new ChunkWriter(true);
  private connected = false;
  private app = '';
  private tcUrl = '';
  private pageUrl = '';
  private vhost = DEFAULT_VHOST;
  /** tcUrl and app queries: where `?secret=` and `?vhost=` may be given at connect time. */
  private connectQuery = new URLSearchParams();
  private nextStreamId = 1;
  private publication: Publication | null = null;
  private playing: { consumer: Consumer; client: CountingClient; streamId: number } | null = null;
  private acquiring = false;
  private closing = false;
  /** The connection's id in hook bodies, and its on_connect verdict (publish and play wait on it). */
  private readonly hookId = newClientId();
  private connectAllowed: Promise<boolean> = Promise.resolve(true);
  private playGrant: Grant | null = null;
  /** Bytes received, and where the last acknowledgement was sent (§5.4.3). */
  private received = 0;
  private ackedAt = 0;
  private peerWindow = 0;

  constructor(
    readonly socket: Socket,
    private readonly deps: RtmpDeps,
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
    socket.on('data', (d: Buffer) => {
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
    return this.publication !== null || this.playing !== null;
  }

  /** Shutdown: a connection that neither publishes nor plays has nothing to finish. */
  shutdown(): void {
    if (!this.busy) this.socket.destroy();
  }

  /** "rtmp 1.2.3.4 live/a" for log lines: who, and what it publishes (or its app, if any yet). */
  private who(): string {
    const what = this.publication?.label ?? this.app;
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

  /** Connected, or back from a publish or play: it must start another within the idle time. */
  private armIdleDeadline(): void {
    const ms = this.limits.idleTimeoutMs;
    this.setDeadline(ms, () => `neither published nor played within ${ms} ms of connecting`);
  }

  /** Publishing is authorised: unfinished messages are bounded by the stream's own limits, not the anonymous pool. */
  private trusted(): void {
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
    this.deps.log.warn(`${this.who()}: nothing received for ${this.limits.idleTimeoutMs} ms ${this.publication ? 'while publishing' : 'before publish or play'}, closing`);
    this.publication?.finish('idle timeout');
    this.socket.destroy();
  }

  private fail(err: unknown): void {
    if (this.socket.destroyed) return;
    const known = err instanceof RtmpError || err instanceof AmfError || err instanceof HandshakeError;
    const msg = err instanceof Error ? err.message : String(err);
    if (known) this.deps.log.warn(`${this.who()}: ${msg}, closing`);
    else this.deps.log.error(`${this.who()}: internal error: ${msg}, closing`);
    this.publication?.finish('malformed RTMP');
    this.socket.destroy();
  }

  private onClose(): void {
    clearTimeout(this.deadline);
    this.cancelWait?.();
    this.cancelWait = null;
    this.account.close();
    this.publication?.finish('connection closed');
    this.publication = null;
    if (this.playing) {
      this.playing.consumer.end('closed');
      this.deps.hub.removeClient(this.playing.client.id);
      this.playing = null;
    }
    this.playGrant?.end();
    this.playGrant = null;
    if (this.connected) this.deps.access.closed({ vhost: this.vhost, app: this.app, ip: this.ip, clientId: this.hookId, sendBytes: this.socket.bytesWritten, recvBytes: this.received });
  }

  // ---- bytes in ----------------------------------------------------------------------------------

  private onData(d: Buffer): void {
    if (this.closing) return;
    this.received += d.length;
    const client = this.publication?.client ?? this.playing?.client;
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
        return this.onMedia(msg);
      case MSG_DATA_AMF0:
        return this.onData0(msg, msg.payload);
      case MSG_DATA_AMF3:
        // AMF3 data and command messages open with a format byte; ffmpeg and OBS put AMF0 after it.
        return this.onData0(msg, msg.payload.subarray(1));
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

  private onMedia(msg: RtmpMessage): void {
    const pub = this.publication;
    if (!pub) return;
    const pkt = packetFromTag(msg.type, msg.timestamp, msg.payload);
    if (pkt) pub.source.push(pkt);
  }

  /** `@setDataFrame onMetaData {…}` from an encoder: stored as the FLV script tag `onMetaData {…}`. */
  private onData0(msg: RtmpMessage, payload: Buffer): void {
    const pub = this.publication;
    if (!pub || payload.length === 0) return;
    const first = decodeAmf0(payload);
    const body = first.value === '@setDataFrame' ? payload.subarray(first.offset) : payload;
    const values = decodeAmf0All(body);
    if (values[0] === 'onMetaData') {
      // The tracks an HTTP-FLV player's header flags announce, before their first packets arrive.
      const meta = values[1] instanceof EcmaArray ? values[1].props : isObject(values[1]) ? values[1] : {};
      if (meta.videocodecid !== undefined) pub.source.declared.video = true;
      if (meta.audiocodecid !== undefined) pub.source.declared.audio = true;
    }
    pub.source.push(packetFromTag(TAG_SCRIPT, msg.timestamp, Buffer.from(body))!);
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
    const label = `${name.app}/${name.stream}`;
    const refuse = (code: string, description: string) => {
      this.deps.log.warn(`rtmp ${this.ip}: publish ${label} refused: ${description}`);
      this.status(streamId, 'error', code, description);
      this.closeAfterFlush();
    };
    if (!name.stream || !name.app) return refuse('NetStream.Publish.BadName', 'an app and a stream name are required');
    this.acquiring = true;
    this.authorise('publish', name, query).then((v) => {
      this.acquiring = false;
      if (this.socket.destroyed || this.closing) return v.ok && v.end();
      if (!v.ok) return refuse('NetStream.Publish.Denied', new GatewayError('PUBLISH_FORBIDDEN').message);
      this.startPublish(streamId, name, label, v, refuse);
    }).catch((err: unknown) => {
      this.acquiring = false;
      this.fail(err);
    });
  }

  /** The chain for a publish or play of this connection, after its on_connect. */
  private async authorise(action: 'publish' | 'play', name: StreamName, query: URLSearchParams, streamId?: string): Promise<Verdict> {
    if (!(await this.connectAllowed)) return { ok: false, status: 403 };
    const door: DoorRequest = {
      action, name, ip: this.ip, query: new URLSearchParams([...query, ...this.connectQuery]), bearer: null,
      tcUrl: this.tcUrl, pageUrl: this.pageUrl, protocol: 'RTMP', clientId: this.hookId, streamId,
    };
    return this.deps.access.authorise(door);
  }

  private startPublish(streamId: number, name: StreamName, label: string, grant: Grant, refuse: (code: string, description: string) => void): void {
    try {
      this.publication = startPublication(this.deps.hub, this.deps.log, {
        type: 'fmle-publish',
        ip: this.ip,
        name,
        url: `/${label}`,
        tcUrl: this.tcUrl,
        pageUrl: this.pageUrl,
        kick: () => this.socket.destroy(),
      }, 'RTMP', grant);
    } catch (err) {
      grant.end();
      if (err instanceof GatewayError) return refuse('NetStream.Publish.BadName', err.message);
      throw err;
    }
    const pub = this.publication;
    pub.source.once('end', () => {
      // Kicked through the API, taken over, or shutdown: the encoder's connection goes too.
      if (pub.finish('stream ended')) this.socket.destroy();
    });
    clearTimeout(this.deadline);
    this.trusted();
    this.status(streamId, 'status', 'NetStream.Publish.Start', `${label} is now published.`);
  }

  /**
   * A play is authorised before the stream is acquired: acquiring may start an edge pull from the
   * origin or a wait for the publisher, and a peer the policy refuses must cause neither (HTTP
   * plays authorise first too). The stream's id goes to the hooks when the stream exists already.
   */
  private onPlay(streamId: number, raw: AmfValue): void {
    if (this.busy || this.acquiring) throw new RtmpError('play on a connection that already publishes or plays');
    const { name, query } = this.streamName(raw);
    this.acquiring = true;
    clearTimeout(this.deadline);
    this.authorise('play', name, query, this.deps.hub.find(name)?.id).then(async (v) => {
      if (this.socket.destroyed || this.closing) {
        this.acquiring = false;
        return v.ok && v.end();
      }
      if (!v.ok) {
        this.acquiring = false;
        this.deps.log.warn(`${this.who()}: play of ${name.app}/${name.stream} refused by the access policy`);
        this.status(streamId, 'error', 'NetStream.Play.Failed', new GatewayError('PLAY_FORBIDDEN').message);
        return this.closeAfterFlush();
      }
      // Ended in onClose or onStop, whichever comes first.
      this.playGrant = v;
      const source = await this.deps.hub.acquire(name);
      this.acquiring = false;
      if (this.socket.destroyed || this.closing) return;
      if (!source || source.ended) return this.waitForPublisher(streamId, name);
      this.startPlay(streamId, name, source);
    }).catch((err: unknown) => {
      this.acquiring = false;
      this.fail(err);
    });
  }

  /**
   * Nobody publishes the stream yet: the player waits for the publisher (as SRS and nginx-rtmp do),
   * up to the vhost's wait_publisher, then gets StreamNotFound. It is charged to the anonymous pool
   * while it waits, and the wait room bounds how many wait.
   */
  private waitForPublisher(streamId: number, name: StreamName): void {
    const label = `${name.app}/${name.stream}`;
    const ms = this.limits.waitPublisherMs(name.vhost);
    const notFound = () => {
      this.status(streamId, 'error', 'NetStream.Play.StreamNotFound', `${label} is not live.`);
      this.closeAfterFlush();
    };
    if (ms <= 0) return notFound();
    const refuse = (why: string) => {
      this.deps.log.warn(`${this.who()}: play of ${label} refused: ${why}`);
      this.status(streamId, 'error', 'NetStream.Play.Failed', new GatewayError('LIMIT_REACHED', why).message);
      this.closeAfterFlush();
    };
    if (!this.account.take(WAITING_PLAYER_BYTES)) return refuse('memory for connections not yet authorised is exhausted');
    const cancel = this.deps.waiting.wait(name, ms, (source) => {
      this.leaveWait();
      if (this.socket.destroyed || this.closing) return;
      this.startPlay(streamId, name, source);
    }, () => {
      this.leaveWait();
      if (this.socket.destroyed || this.closing) return;
      this.deps.log.info(`${this.who()}: play of ${label}: no publisher within ${ms} ms`);
      notFound();
    });
    if (!cancel) {
      this.account.give(WAITING_PLAYER_BYTES);
      return refuse(`too many players waiting for a publisher`);
    }
    this.cancelWait = cancel;
    this.acquiring = true;
    // The wait is bounded by its own timer; a silent player is not idle while it waits.
    this.socket.setTimeout(0);
    this.deps.log.info(`${this.who()}: play of ${label} waits for its publisher (up to ${ms} ms)`);
  }

  private leaveWait(): void {
    this.cancelWait = null;
    this.acquiring = false;
    this.account.give(WAITING_PLAYER_BYTES);
  }

  private startPlay(streamId: number, name: StreamName, source: Source): void {
    const label = `${name.app}/${name.stream}`;
    if (source.ended) {
      this.status(streamId, 'error', 'NetStream.Play.StreamNotFound', `${label} is not live.`);
      return this.closeAfterFlush();
    }
    if (!source.canAcceptPlayer()) {
      this.status(streamId, 'error', 'NetStream.Play.Failed', new GatewayError('LIMIT_REACHED', 'too many players on this stream').message);
      return this.closeAfterFlush();
    }
    this.seatPlayer(streamId, name, source, label);
  }

  /** An authorised player: subscribed to the source and listed. */
  private seatPlayer(streamId: number, name: StreamName, source: Source, label: string): void {
    const client = new CountingClient(this.deps.hub, {
      type: 'rtmp-play',
      ip: this.ip,
      name,
      url: `/${label}`,
      tcUrl: this.tcUrl,
      pageUrl: this.pageUrl,
      publish: false,
      kick: () => this.socket.destroy(),
    });
    // A player may be silent for hours; it is the hub's backlog bound that drops a dead one.
    this.socket.setTimeout(0);
    this.sendControl(MSG_USER_CONTROL, Buffer.concat([u16(UC_STREAM_BEGIN), u32(streamId)]));
    this.status(streamId, 'status', 'NetStream.Play.Reset', `Playing and resetting ${label}.`);
    this.status(streamId, 'status', 'NetStream.Play.Start', `Started playing ${label}.`);
    this.send([{ csid: CSID_STATUS, type: MSG_DATA_AMF0, streamId, timestamp: 0, payload: encodeAmf0('|RtmpSampleAccess', true, true) }]);
    const conn = {
      socket: this.socket,
      status: (code: string, description: string) => this.status(streamId, 'status', code, description),
      closeAfterFlush: () => this.closeAfterFlush(),
      drop: (why: string) => {
        this.deps.log.warn(`${this.who()}: play of ${label} dropped: ${why}`);
        this.socket.destroy();
      },
    };
    this.deps.hub.addClient(client);
    this.playing = { consumer: source.subscribe(new RtmpPlaySink(conn, streamId, client, source), client), client, streamId };
    this.deps.log.info(`play ${label} to ${this.ip} over RTMP (client ${client.id})`);
  }

  private onStop(streamId: number): void {
    const pub = this.publication;
    if (pub) {
      this.status(streamId, 'status', 'NetStream.Unpublish.Success', `${pub.label} is now unpublished.`);
      this.publication = null;
      pub.finish('unpublished by the client');
      // The encoder may stay connected and publish again on the same connection.
      this.socket.setTimeout(this.limits.idleTimeoutMs);
      this.armIdleDeadline();
    } else if (this.playing) {
      this.playGrant?.end();
      this.playGrant = null;
      this.playing.consumer.end('closed');
      this.deps.hub.removeClient(this.playing.client.id);
      this.playing = null;
      this.socket.setTimeout(this.limits.idleTimeoutMs);
      this.armIdleDeadline();
    } else if (this.cancelWait) {
      // A player that gives up waiting (closeStream) may play something else.
      this.cancelWait();
      this.leaveWait();
      this.playGrant?.end();
      this.playGrant = null;
      this.socket.setTimeout(this.limits.idleTimeoutMs);
      this.armIdleDeadline();
    }
  }

  // ---- bytes out ---------------------------------------------------------------------------------

  private send(msgs: OutMessage[]): void {
    if (this.socket.destroyed) return;
    const buf = this.writer.write(msgs);
    this.socket.write(buf);
    if (this.playing) this.playing.client.sent += buf.length;
  }

  private sendControl(type: number, payload: Buffer): void {
    this.send([{ csid: CSID_CONTROL, type, streamId: 0, timestamp: 0, payload }]);
  }

  private command(name: string, txn: number, ...values: AmfValue[]): void {
    this.send([{ csid: CSID_COMMAND, type: MSG_COMMAND_AMF0, streamId: 0, timestamp: 0, payload: encodeAmf0(name, txn, ...values) }]);
  }

  private result(txn: number, ...values: AmfValue[]): void {
    this.command('_result', txn, ...values);
  }

  private status(streamId: number, level: 'status' | 'error', code: string, description: string): void {
    const info = { level, code, description, clientid: 'streamgate' };
    this.send([{ csid: CSID_STATUS, type: MSG_COMMAND_AMF0, streamId, timestamp: 0, payload: encodeAmf0('onStatus', 0, null, info) }]);
  }

  /** Ends the connection after what is queued; a peer that never hangs up is cut after a grace period. */
  private closeAfterFlush(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.setTimeout(CLOSE_GRACE_MS);
    this.socket.end();
  }
}

function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v);
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v);
  return b;
}

/** The host of an rtmp:// URL, or "" when it has none. */
function hostOf(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/\[?([^/\]:?]*)/i.exec(url);
  return m ? m[1] : '';
}
