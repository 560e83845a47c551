import type { Duplex } from 'node:stream';
import type { Server, Socket } from 'node:net';
import type http2 from 'node:http2';
import type { FrontDoorOptions } from '../frontdoor.js';
import { H2Connection } from './connection.js';

export { H2Connection, MAX_CONCURRENT_STREAMS } from './connection.js';

/**
 * Node's sessions behind our own connections: their streams were already offered to the front
 * door by our connection and found no answer in memory, so Node's h2 front door passes them on.
 */
export const relaySessions = new WeakSet<http2.Http2Session>();

/**
 * Serves an h2 connection with streamgate's own HTTP/2 connection; what it does not answer from
 * memory is relayed to Node's http2 server through `nodeListeners` (the server's original
 * 'secureConnection' listeners), on an inner link that looks to Node and Koa like this socket.
 */
export function serveH2(server: Server, nodeListeners: ((s: Socket) => void)[], sock: Socket, opts: FrontDoorOptions, notPlain: ReadonlySet<string>): H2Connection {
  return new H2Connection(sock, {
    answer: opts.answer,
    done: opts.done,
    timed: opts.timed,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
    headerTimeoutMs: opts.headerTimeoutMs ?? opts.keepAliveTimeoutMs,
    maxHeaderBytes: opts.maxHeaderBytes,
    notPlain,
    relay(inner: Duplex) {
      let made: http2.ServerHttp2Session | undefined;
      const mirror = (session: http2.ServerHttp2Session) => {
        made = session;
        relaySessions.add(session);
        // Node wraps a socket that is not a native stream in a JSStreamSocket of its own, whose
        // address getters find no handle: the client's address, port and `encrypted` (Koa's
        // ctx.protocol, the access log, per-IP limits) are copied onto that wrapper.
        const key = Object.getOwnPropertySymbols(session).find((k) => k.description === 'socket');
        const wrapper = key === undefined ? undefined : (session as unknown as Record<symbol, object>)[key];
        if (wrapper === undefined) return;
        for (const [name, value] of [['remoteAddress', sock.remoteAddress], ['remotePort', sock.remotePort], ['remoteFamily', sock.remoteFamily], ['encrypted', true], ['alpnProtocol', 'h2']] as const) {
          Object.defineProperty(wrapper, name, { value, configurable: true });
        }
      };
      // The session is made, and 'session' emitted, synchronously inside Node's listener.
      server.prependOnceListener('session', mirror);
      try {
        for (const l of nodeListeners) l.call(server, inner as unknown as Socket);
      } finally {
        server.off('session', mirror);
      }
      // The client's connection has the idle timer (keepalive_timeout, as Node's session had):
      // the relay link is quiet whenever the client only asks for what is answered from memory,
      // and Node closing it then would send the client a GOAWAY mid-use.
      made?.setTimeout(0);
    },
  });
}
