import type http2 from 'node:http2';
import { refuseNodeStream, relaySessions } from './h2/index.js';
import { RecentRequests } from './h2/request.js';
import { NOT_PLAIN } from './front-head.js';
import { type FastReply, type FastRequest, type FrontDoorOptions, replyFields } from './front-reply.js';
import { logAddress } from '../net/address.js';

/** Response headers of a reply, as HTTP/2 wants them; parsed once per reply (replies are reused). */
const h2Heads = new WeakMap<FastReply, http2.OutgoingHttpHeaders>();

function h2HeadersOf(r: FastReply): http2.OutgoingHttpHeaders {
  let h = h2Heads.get(r);
  if (h === undefined) {
    h = { ':status': r.status };
    for (const [name, value] of replyFields(r).slice(1)) h[name] = value;
    h2Heads.set(r, h);
  }
  return h;
}

/**
 * The same front door for HTTP/2 streams: a plain GET/HEAD whose answer is already in memory is
 * answered on the stream itself, skipping the compatibility layer's request and response
 * objects and the Koa context; anything else goes to Node's own 'stream' listener (which builds
 * them) untouched. A cold cache is not waited for on HTTP/2: the request takes the full table.
 */
export function installH2FrontDoor(server: http2.Http2SecureServer, opts: Pick<FrontDoorOptions, 'answer' | 'done'>): void {
  type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => void;
  const nodeListeners = server.listeners('stream') as StreamListener[];
  server.removeAllListeners('stream');
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
    const relayed = stream.session !== undefined && relaySessions.has(stream.session);
    // The relay's streams were judged by our own connection; Node's own by the same rules here.
    if (!relayed && refuseNodeStream(stream, headers, raw)) return;
    const session = stream.session;
    const plain = relayed || session === undefined ? null : plainH2(headers, logAddress(session.socket?.remoteAddress));
    // A repeated request keeps its memo, as on our own connections (RecentRequests).
    const req = plain === null ? null : recentOf(session!).same(plain);
    const now = Date.now();
    const answer = req === null ? null : opts.answer(req, now);
    if (req === null || answer === null || answer instanceof Promise) {
      for (const l of nodeListeners) l.call(server, stream, headers, flags, raw);
      return;
    }
    // 'stream' is emitted a tick after nghttp2 opened it: a client may have reset it since
    // (respond() then throws), and a stream error with no listener would end the process.
    stream.on('error', () => {});
    if (stream.destroyed) return;
    const withBody = req.method === 'GET' && answer.body.length > 0;
    stream.respond(h2HeadersOf(answer), { endStream: !withBody });
    if (withBody) stream.end(answer.body);
    // From memory, in the turn that read the request: logged as 0.000, as on every lane.
    opts.done(req, answer, withBody ? answer.body.length : 0, 0, 0, now);
  });
}

const recent = new WeakMap<http2.Http2Session, RecentRequests>();

function recentOf(session: http2.Http2Session): RecentRequests {
  let r = recent.get(session);
  if (r === undefined) {
    r = new RecentRequests();
    recent.set(session, r);
  }
  return r;
}

function plainH2(h: http2.IncomingHttpHeaders, ip: string): FastRequest | null {
  const method = h[':method'];
  if (method !== 'GET' && method !== 'HEAD') return null;
  const url = h[':path'];
  if (typeof url !== 'string' || url.charCodeAt(0) !== 0x2f) return null;
  for (const name of NOT_PLAIN) if (h[name] !== undefined) return null;
  const host = h[':authority'] ?? h.host;
  if (typeof host !== 'string') return null;
  const str = (v: string | string[] | undefined) => (typeof v === 'string' ? v : '');
  return { method, url, host, origin: h.origin !== undefined, referer: str(h.referer), agent: str(h['user-agent']), ip, httpVersion: '2.0', head: '', memo: null };
}
