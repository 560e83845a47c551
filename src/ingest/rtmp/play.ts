import { GatewayError } from '../../errors.js';
import { CountingClient } from '../../live/client.js';
import type { Consumer } from '../../live/consumer.js';
import type { Source } from '../../live/source.js';
import type { StreamName } from '../../live/types.js';
import type { Grant } from '../../auth/policy.js';
import { RtmpPlaySink } from '../../outputs/rtmp-play.js';
import { encodeAmf0 } from './amf0.js';
import { MSG_DATA_AMF0, MSG_USER_CONTROL } from './chunk.js';
import { u16, u32, type RtmpConn } from './conn.js';
import { WAITING_PLAYER_BYTES } from './play-wait.js';

/** User Control event Stream Begin (§7.1.7). */
const UC_STREAM_BEGIN = 0;
const CSID_STATUS = 5;

/**
 * The play side of an RTMP connection: authorise, acquire (which may start an edge pull), wait for
 * a publisher if there is none yet, then seat the player on the source.
 */
export class RtmpPlay {
  playing: { consumer: Consumer; client: CountingClient; streamId: number } | null = null;
  /** Leaves the wait for a publisher (the player went away). */
  private cancelWait: (() => void) | null = null;
  private grant: Grant | null = null;

  constructor(private readonly c: RtmpConn) {}

  /**
   * A play is authorised before the stream is acquired: acquiring may start an edge pull from the
   * origin or a wait for the publisher, and a peer the policy refuses must cause neither (HTTP
   * plays authorise first too). The stream's id goes to the hooks when the stream exists already.
   */
  start(streamId: number, name: StreamName, query: URLSearchParams): void {
    const c = this.c;
    c.acquiring = true;
    c.clearDeadline();
    c.authorise('play', name, query, c.deps.hub.find(name)?.id).then(async (v) => {
      if (c.socket.destroyed || c.closing) {
        c.acquiring = false;
        return v.ok && v.end();
      }
      if (!v.ok) {
        c.acquiring = false;
        c.deps.log.warn(`${c.who()}: play of ${name.app}/${name.stream} refused by the access policy`);
        c.status(streamId, 'error', 'NetStream.Play.Failed', new GatewayError('PLAY_FORBIDDEN').message);
        return c.closeAfterFlush();
      }
      // Ended in close() or stop(), whichever comes first.
      this.grant = v;
      const source = await c.deps.hub.acquire(name);
      c.acquiring = false;
      if (c.socket.destroyed || c.closing) return;
      if (!source || source.ended) return this.waitForPublisher(streamId, name);
      this.begin(streamId, name, source);
    }).catch((err: unknown) => {
      c.acquiring = false;
      c.fail(err);
    });
  }

  /**
   * Nobody publishes the stream yet: the player waits for the publisher (as SRS and nginx-rtmp do),
   * up to the vhost's wait_publisher, then gets StreamNotFound. It is charged to the anonymous pool
   * while it waits, and the wait room bounds how many wait.
   */
  private waitForPublisher(streamId: number, name: StreamName): void {
    const c = this.c;
    const label = `${name.app}/${name.stream}`;
    const ms = c.limits.waitPublisherMs(name.vhost);
    const notFound = () => {
      c.status(streamId, 'error', 'NetStream.Play.StreamNotFound', `${label} is not live.`);
      c.closeAfterFlush();
    };
    if (ms <= 0) return notFound();
    const refuse = (why: string) => {
      c.deps.log.warn(`${c.who()}: play of ${label} refused: ${why}`);
      c.status(streamId, 'error', 'NetStream.Play.Failed', new GatewayError('LIMIT_REACHED', why).message);
      c.closeAfterFlush();
    };
    if (!c.take(WAITING_PLAYER_BYTES)) return refuse('memory for connections not yet authorised is exhausted');
    const cancel = c.deps.waiting.wait(name, ms, (source) => {
      this.leaveWait();
      if (c.socket.destroyed || c.closing) return;
      this.begin(streamId, name, source);
    }, () => {
      this.leaveWait();
      if (c.socket.destroyed || c.closing) return;
      c.deps.log.info(`${c.who()}: play of ${label}: no publisher within ${ms} ms`);
      notFound();
    });
    if (!cancel) {
      c.give(WAITING_PLAYER_BYTES);
      return refuse(`too many players waiting for a publisher`);
    }
    this.cancelWait = cancel;
    c.acquiring = true;
    // The wait is bounded by its own timer; a silent player is not idle while it waits.
    c.socket.setTimeout(0);
    c.deps.log.info(`${c.who()}: play of ${label} waits for its publisher (up to ${ms} ms)`);
  }

  private leaveWait(): void {
    this.cancelWait = null;
    this.c.acquiring = false;
    this.c.give(WAITING_PLAYER_BYTES);
  }

  private begin(streamId: number, name: StreamName, source: Source): void {
    const label = `${name.app}/${name.stream}`;
    if (source.ended) {
      this.c.status(streamId, 'error', 'NetStream.Play.StreamNotFound', `${label} is not live.`);
      return this.c.closeAfterFlush();
    }
    if (!source.canAcceptPlayer()) {
      this.c.status(streamId, 'error', 'NetStream.Play.Failed', new GatewayError('LIMIT_REACHED', 'too many players on this stream').message);
      return this.c.closeAfterFlush();
    }
    this.seat(streamId, name, source, label);
  }

  /** An authorised player: subscribed to the source and listed. */
  private seat(streamId: number, name: StreamName, source: Source, label: string): void {
    const c = this.c;
    const client = new CountingClient(c.deps.hub, {
      type: 'rtmp-play',
      ip: c.ip,
      name,
      url: `/${label}`,
      tcUrl: c.tcUrl,
      pageUrl: c.pageUrl,
      publish: false,
      kick: () => c.socket.destroy(),
      id: this.grant?.clientId,
    });
    // A player may be silent for hours; it is the hub's backlog bound that drops a dead one.
    c.socket.setTimeout(0);
    c.sendControl(MSG_USER_CONTROL, Buffer.concat([u16(UC_STREAM_BEGIN), u32(streamId)]));
    c.status(streamId, 'status', 'NetStream.Play.Reset', `Playing and resetting ${label}.`);
    c.status(streamId, 'status', 'NetStream.Play.Start', `Started playing ${label}.`);
    c.send([{ csid: CSID_STATUS, type: MSG_DATA_AMF0, streamId, timestamp: 0, payload: encodeAmf0('|RtmpSampleAccess', true, true) }]);
    const conn = {
      socket: c.socket,
      status: (code: string, description: string) => c.status(streamId, 'status', code, description),
      closeAfterFlush: () => c.closeAfterFlush(),
      drop: (why: string) => {
        c.deps.log.warn(`${c.who()}: play of ${label} dropped: ${why}`);
        c.socket.destroy();
      },
    };
    c.deps.hub.addClient(client);
    this.playing = { consumer: source.subscribe(new RtmpPlaySink(conn, streamId, client, source), client), client, streamId };
    c.deps.log.info(`play ${label} to ${c.ip} over RTMP (client ${client.id})`);
  }

  /** closeStream/deleteStream: stops playing or waiting; false when there was nothing to stop. */
  stop(): boolean {
    if (this.playing) {
      this.end();
      return true;
    }
    if (this.cancelWait) {
      // A player that gives up waiting (closeStream) may play something else.
      this.cancelWait();
      this.leaveWait();
      this.end();
      return true;
    }
    return false;
  }

  /** The connection is gone: leave the wait, the source and the grant. */
  close(): void {
    this.cancelWait?.();
    this.cancelWait = null;
    this.end();
  }

  private end(): void {
    if (this.playing) {
      this.playing.consumer.end('closed');
      this.c.deps.hub.removeClient(this.playing.client.id);
      this.playing = null;
    }
    this.grant?.end();
    this.grant = null;
  }
}
