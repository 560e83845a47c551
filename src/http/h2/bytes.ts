import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';

/**
 * Body octets of an HTTP/2 response (NGINX's $body_bytes_sent), for the access log. Node's
 * HTTP/2 streams keep no byte count of their own and share one socket, so the socket's counter
 * cannot tell streams apart; a Content-Length says nothing of a live stream or of an answer cut
 * short. Every write to the response is counted instead (Koa pipes bodies through `write`, and
 * `end(chunk)` passes its chunk to `write`); what is still buffered when the stream closes was
 * not sent.
 */
export function bodyBytesSent(res: ServerResponse | Http2ServerResponse): () => number {
  const r = res as Http2ServerResponse;
  let written = 0;
  const write = r.write;
  r.write = function (this: Http2ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string') written += Buffer.byteLength(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : 'utf8');
    else if (chunk instanceof Uint8Array) written += chunk.byteLength;
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof r.write;
  return () => {
    const stream = r.stream as { writableLength?: number } | undefined;
    return Math.max(0, written - (stream?.writableLength ?? 0));
  };
}
