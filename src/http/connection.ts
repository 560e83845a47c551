import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Context } from 'koa';

/**
 * The few things long-lived responses (live streams, publishes) need from the connection,
 * for HTTP/1.1 and HTTP/2 alike: HTTP/2 forbids touching the session's socket, so per-request
 * operations go to the stream there.
 */
export function isHttp2(ctx: Context): boolean {
  return ctx.req.httpVersionMajor >= 2;
}

/** Drops this request's connection (HTTP/1) or stream (HTTP/2) at once. */
export function abortRequest(ctx: Context): void {
  if (isHttp2(ctx)) (ctx.req as unknown as Http2ServerRequest).stream?.destroy();
  else ctx.req.socket?.destroy();
}

/** A client still sending after its refusal gets this long to read the answer (NGINX's lingering close). */
const LINGER_MAX_MS = 2000;
/** …or until it has sent nothing for this long. */
const LINGER_IDLE_MS = 500;

/**
 * For an answer given before the request body was read (413, 409, 403): say Connection: close,
 * and once the answer is out, close our side but keep reading and discarding what the client
 * still sends for a moment. Destroying the socket with its bytes unread makes the kernel send a
 * reset, which can reach the client before it reads the answer: it would see ECONNRESET instead
 * of the reason.
 */
export function closeAfterResponse(ctx: Context): void {
  ctx.set('Connection', 'close');
  ctx.res.once('finish', () => {
    if (isHttp2(ctx)) return abortRequest(ctx);
    const sock = ctx.req.socket;
    if (!sock || sock.destroyed) return;
    // Node's server has just called destroySoon() for Connection: close, which destroys the
    // socket as soon as our FIN is out: take that back, the lingering below closes it.
    sock.removeListener('finish', sock.destroy);
    const done = () => sock.destroy();
    const max = setTimeout(done, LINGER_MAX_MS);
    max.unref();
    sock.once('close', () => clearTimeout(max));
    sock.setTimeout(LINGER_IDLE_MS, done);
    ctx.req.unpipe?.();
    ctx.req.removeAllListeners('data');
    ctx.req.on('data', () => undefined);
    ctx.req.resume();
    sock.end();
  });
}

/** Bytes accepted for this response but not yet handed to the kernel. */
export function responseBacklog(res: ServerResponse | Http2ServerResponse): number {
  const h2 = (res as Http2ServerResponse).stream;
  if (h2) return h2.writableLength;
  return (res as ServerResponse).writableLength;
}

export type AnyRequest = IncomingMessage | Http2ServerRequest;
