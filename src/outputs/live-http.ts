import type { Socket } from 'node:net';
import type { Context } from 'koa';
import type { Http2ServerResponse } from 'node:http2';
import type { MediaPacket } from '../media/packet.js';
import { CountingClient } from '../live/client.js';
import { clientIp } from '../net/address.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import { encodeOnce, type Batch, type EndReason, type Sink } from '../live/types.js';
import { abortRequest, isHttp2 } from '../http/connection.js';
import { VERSION } from '../version.js';

/**
 * How one live output format turns the hub's packets into response bytes: FLV, MPEG-TS, ADTS,
 * MP3 (SRS's ISrsBufferEncoder). A stateless encoder names its `format`, so one encoding of a
 * batch is shared by every player in step (the merged write); a stateful one (continuity
 * counters, codec config read from the stream) has `format` null and encodes per player.
 */
export interface LiveEncoder {
  /** Bytes that open the response (FLV header, PAT/PMT); may be empty. */
  head: Buffer;
  format: string | null;
  /** False when the bytes carry no timestamps (ADTS, MP3): one encoding serves every origin. */
  timed?: boolean;
  /** The packets' bytes, timestamps on the player timeline whose 0 is `origin` (playerDts). */
  encode(packets: readonly MediaPacket[], origin: number): Buffer;
}

export interface LivePlay {
  /** SRS client type shown by the API: flv-play, ts-play, aac-play, mp3-play. */
  clientType: string;
  ext: string;
  contentType: string;
  encoder: LiveEncoder;
}

/**
 * A live response of any format. On HTTP/1.1 it is written straight to the socket after a
 * hand-made head, chunked (no Content-Length, which mpegts.js needs; and the zero-length last
 * chunk is how ffmpeg/ffplay tell a clean end from a cut: a close-delimited body makes them
 * report "Stream ends prematurely"). HTTP/2 goes through the stream as usual.
 */
export function playLive(ctx: Context, source: Source, hub: Hub, play: LivePlay): void {
  const name = source.name;
  const client = new CountingClient(hub, {
    type: play.clientType,
    ip: clientIp(ctx.req.socket?.remoteAddress),
    name,
    url: `/${name.app}/${name.stream}.${play.ext}`,
    tcUrl: `http://${ctx.host}/${name.app}`,
    pageUrl: ctx.get('Referer'),
    publish: false,
    kick: () => abortRequest(ctx),
    id: ctx.state.clientId as string | undefined,
  });
  ctx.respond = false;
  const sink = isHttp2(ctx)
    ? new Http2LiveSink(ctx.res as unknown as Http2ServerResponse, ctx, client, source, play)
    : new SocketLiveSink(ctx.req.socket, ctx, client, source, play);
  hub.addClient(client);
  const consumer = source.subscribe(sink, client);
  const gone = () => {
    consumer.end('closed');
    hub.removeClient(client.id);
  };
  ctx.res.once('close', gone);
  ctx.req.once('close', gone);
}

const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/** One HTTP/1.1 chunk (RFC 9112 §7.1) around `data`, in a single Buffer. */
function chunk(data: Buffer): Buffer {
  const size = `${data.length.toString(16)}\r\n`;
  const out = Buffer.allocUnsafe(size.length + data.length + 2);
  out.write(size, 0, 'latin1');
  data.copy(out, size.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

/** Response headers for a live stream, with whatever the middleware set (CORS). */
function liveHeaders(ctx: Context, type: string): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.res.getHeaders())) if (v !== undefined) h[k] = String(v);
  h['content-type'] = type;
  h['cache-control'] = 'no-cache';
  h.server = `streamgate/${VERSION}`;
  return h;
}

/**
 * The key of a shared encoding: format and origin. Remade only when a player's origin changes
 * (at its first frames), so the per-write cost for the fan-out stays one comparison.
 */
class EncodingKey {
  private origin = Number.NaN;
  private key = '';

  constructor(
    private readonly format: string,
    private readonly timed: boolean,
  ) {}

  of(origin: number): string {
    if (!this.timed) return this.format;
    if (origin !== this.origin) {
      this.origin = origin;
      this.key = `${this.format}@${origin}`;
    }
    return this.key;
  }
}

export class SocketLiveSink implements Sink {
  private closed = false;
  private readonly encoder: LiveEncoder;
  private readonly key: EncodingKey | null;

  constructor(
    private readonly socket: Socket,
    ctx: Context,
    private readonly client: CountingClient,
    private readonly source: Source,
    play: LivePlay,
  ) {
    this.encoder = play.encoder;
    this.key = play.encoder.format !== null ? new EncodingKey(`${play.encoder.format}-chunked`, play.encoder.timed ?? true) : null;
    const headers = liveHeaders(ctx, play.contentType);
    let text = 'HTTP/1.1 200 OK\r\n';
    for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
    text += `date: ${new Date().toUTCString()}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`;
    // The head and the format's header go out together: a player sees bytes at once.
    const head = Buffer.from(text, 'latin1');
    this.send(play.encoder.head.length > 0 ? Buffer.concat([head, chunk(play.encoder.head)]) : head);
    // Nothing follows this response on the connection; tell Node's server not to wait for one.
    ctx.res.shouldKeepAlive = false;
    ctx.state.rawStatus = 200;
    ctx.state.rawHeadBytes = head.length;
  }

  backlog(): number {
    return this.socket.writableLength;
  }

  write(batch: Batch, origin: number): void {
    const e = this.encoder;
    if (this.key !== null) {
      this.send(encodeOnce(batch, this.key.of(origin), (p) => {
        const body = e.encode(p, origin);
        return body.length > 0 ? chunk(body) : body;
      }));
      return;
    }
    const body = e.encode(batch.packets, origin);
    // A zero-length chunk would end the response.
    if (body.length > 0) this.send(chunk(body));
  }

  private send(buf: Buffer): void {
    if (this.closed || this.socket.destroyed || buf.length === 0) return;
    this.socket.write(buf);
    this.client.sent += buf.length;
    this.source.send.add(buf.length);
  }

  end(_reason: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.socket.destroyed) this.socket.end(LAST_CHUNK);
  }
}

export class Http2LiveSink implements Sink {
  private closed = false;
  private readonly encoder: LiveEncoder;
  private readonly key: EncodingKey | null;

  constructor(
    private readonly res: Http2ServerResponse,
    ctx: Context,
    private readonly client: CountingClient,
    private readonly source: Source,
    play: LivePlay,
  ) {
    this.encoder = play.encoder;
    this.key = play.encoder.format !== null ? new EncodingKey(play.encoder.format, play.encoder.timed ?? true) : null;
    res.writeHead(200, liveHeaders(ctx, play.contentType));
    this.send(play.encoder.head);
  }

  backlog(): number {
    return this.res.stream?.writableLength ?? 0;
  }

  write(batch: Batch, origin: number): void {
    const e = this.encoder;
    this.send(this.key !== null ? encodeOnce(batch, this.key.of(origin), (p) => e.encode(p, origin)) : e.encode(batch.packets, origin));
  }

  private send(buf: Buffer): void {
    if (this.closed || this.res.stream?.destroyed || buf.length === 0) return;
    this.res.write(buf);
    this.client.sent += buf.length;
    this.source.send.add(buf.length);
  }

  end(_reason: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.res.stream?.destroyed) this.res.end();
  }
}
