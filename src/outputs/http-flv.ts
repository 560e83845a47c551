import type { Socket } from 'node:net';
import type { Context } from 'koa';
import type { Http2ServerResponse } from 'node:http2';
import { flvHeader, flvTags } from '../media/flv/muxer.js';
import { CountingClient, clientIp } from '../live/client.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import { encodeOnce, type Batch, type EndReason, type Sink } from '../live/types.js';
import { abortRequest, isHttp2 } from '../http/connection.js';
import { VERSION } from '../version.js';

/**
 * Live HTTP-FLV play. On HTTP/1.1 the response is written straight to the socket after a
 * hand-made head, chunked (no Content-Length, which mpegts.js needs; and the zero-length last
 * chunk is how ffmpeg/ffplay tell a clean end from a cut: a close-delimited body makes them
 * report "Stream ends prematurely"). Each merged batch is framed once and written as one
 * Buffer shared by every player in step. HTTP/2 goes through the stream as usual.
 */
export function playHttpFlv(ctx: Context, source: Source, hub: Hub): void {
  const name = source.name;
  const client = new CountingClient(hub, {
    type: 'flv-play',
    ip: clientIp(ctx.req.socket?.remoteAddress),
    name,
    url: `/${name.app}/${name.stream}.flv`,
    tcUrl: `http://${ctx.host}/${name.app}`,
    pageUrl: ctx.get('Referer'),
    publish: false,
    kick: () => abortRequest(ctx),
  });
  ctx.respond = false;
  const head = flvHeader(source.hasAudio, source.hasVideo);
  const sink = isHttp2(ctx) ? new Http2FlvSink(ctx.res as unknown as Http2ServerResponse, ctx, client, source, head) : new SocketFlvSink(ctx.req.socket, ctx, client, source, head);
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

export class SocketFlvSink implements Sink {
  private closed = false;

  constructor(
    private readonly socket: Socket,
    ctx: Context,
    private readonly client: CountingClient,
    private readonly source: Source,
    flvHead: Buffer,
  ) {
    const headers = liveHeaders(ctx, 'video/x-flv');
    let text = 'HTTP/1.1 200 OK\r\n';
    for (const [k, v] of Object.entries(headers)) text += `${k}: ${v}\r\n`;
    text += `date: ${new Date().toUTCString()}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`;
    // The head and the FLV header go out together: a player sees bytes at once.
    this.send(Buffer.concat([Buffer.from(text, 'latin1'), chunk(flvHead)]));
    // Nothing follows this response on the connection; tell Node's server not to wait for one.
    ctx.res.shouldKeepAlive = false;
    ctx.state.rawStatus = 200;
  }

  backlog(): number {
    return this.socket.writableLength;
  }

  write(batch: Batch): void {
    this.send(encodeOnce(batch, 'flv-chunked', (p) => chunk(flvTags(p))));
  }

  private send(buf: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
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

export class Http2FlvSink implements Sink {
  private closed = false;

  constructor(
    private readonly res: Http2ServerResponse,
    ctx: Context,
    private readonly client: CountingClient,
    private readonly source: Source,
    flvHead: Buffer,
  ) {
    res.writeHead(200, liveHeaders(ctx, 'video/x-flv'));
    this.send(flvHead);
  }

  backlog(): number {
    return this.res.stream?.writableLength ?? 0;
  }

  write(batch: Batch): void {
    this.send(encodeOnce(batch, 'flv', flvTags));
  }

  private send(buf: Buffer): void {
    if (this.closed || this.res.stream?.destroyed) return;
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
