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

/** Bytes accepted for this response but not yet handed to the kernel. */
export function responseBacklog(res: ServerResponse | Http2ServerResponse): number {
  const h2 = (res as Http2ServerResponse).stream;
  if (h2) return h2.writableLength;
  return (res as ServerResponse).writableLength;
}

export type AnyRequest = IncomingMessage | Http2ServerRequest;
