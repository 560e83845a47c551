import type http2 from 'node:http2';
import { MAX_RELAYED_IN_FLIGHT } from './calm.js';
import type { Field } from './hpack.js';
import { BAD_REQUEST, malformed, targetOf } from './request.js';

/**
 * Node's own HTTP/2 sessions (own_h2 off) get the bound our connection has (calm.ts
 * ProgressTimer): a session whose open streams make no progress for request_timeout is closed.
 * Node's session timeout counts every frame, so a client that set its windows to 0 and sends a
 * PING every half second held its streams, and the file chunks they pinned, for good.
 *
 * Progress is read from public state only: a new stream, and the session's flow-control windows
 * (`session.state`), which move whenever DATA goes either way. A stuck session's windows do not
 * move, whatever PINGs and SETTINGS it sends.
 */
export function watchSession(session: http2.ServerHttp2Session, requestTimeoutMs: () => number): void {
  // What our relay allows a connection in flight to Node, Node's own sessions allow too: every
  // stream they take is a Koa request holding at least a file chunk, a response and its buffers,
  // and a client whose windows are 0 holds them all (128 streams: measured 5-7 MiB a connection,
  // outside every budget). The SETTINGS goes out right after the server's first one; nghttp2
  // refuses streams past the lower number at once, before the client has acknowledged it.
  session.settings({ maxConcurrentStreams: MAX_RELAYED_IN_FLIGHT });
  let open = 0;
  let last = Date.now();
  let seen = '';
  const fingerprint = (): string => {
    const s = session.state;
    return `${s.remoteWindowSize}/${s.localWindowSize}/${s.effectiveLocalWindowSize}/${s.outboundQueueSize}`;
  };
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    open++;
    last = Date.now();
    stream.once('close', () => {
      open--;
      last = Date.now();
    });
  });
  const tick = (): void => {
    if (session.destroyed || session.closed) return;
    const now = fingerprint();
    if (now !== seen) {
      seen = now;
      last = Date.now();
    }
    const bound = requestTimeoutMs();
    if (open > 0 && Date.now() - last >= bound) {
      // NGINX's send_timeout: the client is not reading; the streams and the session go.
      session.goaway(0x0);
      session.destroy();
      return;
    }
    timer = setTimeout(tick, Math.max(50, Math.min(bound / 4, 1000)));
    timer.unref();
  };
  let timer = setTimeout(tick, 50);
  timer.unref();
  session.once('close', () => clearTimeout(timer));
}

/**
 * The request rules for a stream of Node's own server (own_h2 off), as our connection applies
 * them (request.ts): a malformed field list or a target the HTTP/1.1 lanes refuse is answered
 * 400 here, and a `:path` with dot-segments is routed without them. nghttp2 has already refused
 * upper-case names and dropped other invalid fields (it gives no way to see them). True when the
 * stream was answered.
 */
export function refuseNodeStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[]): boolean {
  const fields: Field[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) fields.push([raw[i], raw[i + 1]]);
  const target = malformed(fields) === null ? targetOf(fields) : ({ ok: false, reason: 'malformed' } as const);
  if (target.ok) {
    if (target.changed) headers[':path'] = target.url;
    return false;
  }
  stream.on('error', () => {});
  if (stream.destroyed) return true;
  stream.respond({ ':status': 400, 'content-type': 'text/plain;charset=utf-8', 'content-length': BAD_REQUEST.body.length });
  stream.end(BAD_REQUEST.body);
  return true;
}
