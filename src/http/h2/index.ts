import { Duplex } from 'node:stream';
import type { Server, Socket } from 'node:net';
import http2 from 'node:http2';
import { Account } from '../../limits/budget.js';
import type { FrontDoorOptions } from '../frontdoor.js';
import { H2Connection } from './connection.js';

export { H2Connection } from './connection.js';
export { MAX_CONCURRENT_STREAMS } from './calm.js';
export { bodyBytesSent } from './bytes.js';
export { refuseNodeStream, watchSession } from './node-session.js';

/**
 * Node's sessions behind our own connections: their streams were already offered to the front
 * door by our connection and found no answer in memory, so Node's h2 front door passes them on.
 */
export const relaySessions = new WeakSet<http2.Http2Session>();

/**
 * Node gives a session on a socket that is not a native stream (our relay link) a JSStreamSocket
 * wrapper of its own, whose address getters find no handle; Koa's ctx.ip, `ctx.protocol`, the
 * access log and the API's client list read them through `session.socket`. Node has no public way
 * to set them, so the wrapper is found by its symbol's description and the client's values are
 * defined on it. That is Node's internals: `relayAddressWorks()` tries it once on a throwaway
 * session, and the gateway serves h2 with Node's own server (own_h2 off) when it fails.
 */
function mirrorAddress(session: http2.Http2Session, values: Record<string, unknown>): boolean {
  const key = Object.getOwnPropertySymbols(session).find((k) => k.description === 'socket');
  const wrapper = key === undefined ? undefined : (session as unknown as Record<symbol, unknown>)[key];
  if (typeof wrapper !== 'object' || wrapper === null) return false;
  for (const [name, value] of Object.entries(values)) Object.defineProperty(wrapper, name, { value, configurable: true });
  return true;
}

let probed: boolean | undefined;

/** Whether the relay can show Node the client's address (checked once per process, on a session that never sees a byte). */
export function relayAddressWorks(): boolean {
  if (probed !== undefined) return probed;
  const server = http2.createServer();
  const link = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  let ok = false;
  server.once('session', (session: http2.ServerHttp2Session) => {
    const want = { remoteAddress: '192.0.2.7', remotePort: 4321, encrypted: true };
    ok = mirrorAddress(session, want) && session.socket.remoteAddress === want.remoteAddress && session.socket.remotePort === want.remotePort
      && (session.socket as unknown as { encrypted?: boolean }).encrypted === true;
    session.destroy();
  });
  try {
    server.emit('connection', link);
  } catch {
    ok = false;
  }
  link.destroy();
  probed = ok;
  return ok;
}

/**
 * Serves an h2 connection with streamgate's own HTTP/2 connection; what it does not answer from
 * memory is relayed to Node's http2 server through `nodeListeners` (the server's original
 * 'secureConnection' listeners), on an inner link that looks to Node and Koa like this socket.
 */
export function serveH2(server: Server, nodeListeners: ((s: Socket) => void)[], sock: Socket, opts: FrontDoorOptions, notPlain: ReadonlySet<string>): H2Connection {
  const memory = opts.memory?.();
  return new H2Connection(sock, {
    answer: opts.answer,
    done: opts.done,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
    headerTimeoutMs: opts.headerTimeoutMs ?? opts.keepAliveTimeoutMs,
    requestTimeoutMs: opts.requestTimeoutMs ?? opts.keepAliveTimeoutMs,
    maxHeaderBytes: opts.maxHeaderBytes,
    notPlain,
    account: new Account(memory?.pool ?? null, memory?.connectionBytes ?? 1024 * 1024),
    warn: (line) => opts.warn?.(line),
    relay(inner: Duplex) {
      let made: http2.ServerHttp2Session | undefined;
      const mirror = (session: http2.ServerHttp2Session) => {
        made = session;
        relaySessions.add(session);
        mirrorAddress(session, { remoteAddress: sock.remoteAddress, remotePort: sock.remotePort, remoteFamily: sock.remoteFamily, encrypted: true, alpnProtocol: 'h2' });
      };
      Object.assign(inner, { alpnProtocol: 'h2', encrypted: true, servername: (sock as Socket & { servername?: string | false }).servername });
      // The session is made, and 'session' emitted, synchronously inside Node's listener.
      server.prependOnceListener('session', mirror);
      try {
        for (const l of nodeListeners) l.call(server, inner as unknown as Socket);
      } finally {
        server.off('session', mirror);
      }
      // The client's connection has the timers (keepalive_timeout, request_timeout): the relay
      // link is quiet whenever the client only asks for what is answered from memory, and Node
      // closing it then would send the client a GOAWAY mid-use.
      made?.setTimeout(0);
    },
  });
}
