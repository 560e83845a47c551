import type http from 'node:http';
import { constants as h2c, type Http2ServerResponse } from 'node:http2';
import { util as undiciUtil, type Dispatcher } from 'undici';
import { clientResponseHeaders, trailerFields } from './headers.js';

/** Response objects of either HTTP version, as the relay writes them. */
type AnyRes = http.ServerResponse | Http2ServerResponse;

/**
 * Raised from onHeaders when a response head arrives before the upstream could have read the
 * request: undici then destroys the socket, so it is never offered to another request.
 */
export class StrayResponse extends Error {
  constructor() {
    super('the upstream sent a response before it could have read the request');
  }
}

export interface RelayHooks {
  res: AnyRes;
  /** Forward the upstream's trailers: an HTTP/2 client, or an HTTP/1.1 one that sent `TE: trailers`. */
  trailers: boolean;
  http2: boolean;
  /** Adds our own headers (CORS) to the upstream's before they go out. */
  decorate(headers: http.OutgoingHttpHeaders): void;
  /** The exchange is over (clean end or cut short); `err` says why it was cut, null for a clean end. */
  done(status: number, err: Error | null): void;
  /** The upstream failed before any byte of answer was sent: the caller answers or retries. */
  failed(err: Error): void;
}

/**
 * One proxied exchange on undici's pool, its response written straight to the client's response
 * object (dispatch handlers rather than stream(): they see 1xx heads, trailers and the moment the
 * answer starts). Backpressure: onData returns false while the client's buffer is full, and
 * undici stops reading the upstream until 'drain' resumes it.
 */
export class Relay implements Dispatcher.DispatchHandlers {
  /** Until the poll after the dispatch: any response head now was sent before our request was read. */
  early = true;
  private abortUp: ((err?: Error) => void) | null = null;
  private cancelled = false;
  private status = 0;
  private over = false;

  constructor(private readonly h: RelayHooks) {}

  /** The client is gone: abort the upstream request now, or as soon as undici writes it. */
  cancel(): void {
    this.cancelled = true;
    this.over = true;
    this.abortUp?.();
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUp = abort;
    if (this.cancelled) abort();
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (this.early) throw new StrayResponse();
    // 1xx (100, 103): informational, not forwarded; the real head follows.
    if (statusCode < 200 || this.over) return true;
    const { res } = this.h;
    this.status = statusCode;
    const up = undiciUtil.parseHeaders(raw) as http.IncomingHttpHeaders;
    const out = clientResponseHeaders(up);
    if (this.h.trailers && up.trailer !== undefined) out.trailer = up.trailer;
    this.h.decorate(out);
    (res as http.ServerResponse).writeHead(statusCode, out);
    // A response of unknown length may be a stream of events: show its head at once.
    if (out['content-length'] === undefined && !this.h.http2) (res as http.ServerResponse).flushHeaders();
    res.on('drain', resume);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.over) return true;
    return (this.h.res as http.ServerResponse).write(chunk);
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    if (this.over) return;
    this.over = true;
    const { res } = this.h;
    if (this.h.trailers && trailers !== null && trailers.length > 0) {
      const fields = trailerFields(trailers);
      if (fields !== null) (res as http.ServerResponse).addTrailers(fields);
    }
    res.end();
    this.h.done(this.status, null);
  }

  onError(err: Error): void {
    if (this.over) return;
    this.over = true;
    if (this.h.res.headersSent) {
      // Mid-body: the only honest signal left is to cut the client's response short.
      cutShort(this.h.res, this.h.http2);
      this.h.done(this.status, err);
      return;
    }
    this.h.failed(err);
  }
}

/**
 * Ends a response mid-body so the client knows it is incomplete: HTTP/1 by closing the
 * connection; HTTP/2 by RST_STREAM with INTERNAL_ERROR (as NGINX does), since a plain destroy
 * resets with NO_ERROR and a client may take the truncated body for a whole one.
 */
export function cutShort(res: AnyRes, http2: boolean): void {
  const stream = (res as Http2ServerResponse).stream;
  if (http2 && stream) stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}
