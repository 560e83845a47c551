import net from 'node:net';
import { RtmpSession, type RtmpDeps } from './session.js';

/**
 * The RTMP listener (SRS's top-level `listen`, 1935 by default): a net.Server whose every
 * connection is an RtmpSession. The gateway binds it with its other listeners and tracks its
 * sockets; closing it also ends the connections that neither publish nor play (those that do
 * are ended by the hub, so their players see a clean end of stream).
 */
export class RtmpServer extends net.Server {
  private readonly sessions = new Set<RtmpSession>();

  constructor(deps: RtmpDeps) {
    super((socket) => {
      const s = new RtmpSession(socket, deps);
      this.sessions.add(s);
      socket.once('close', () => this.sessions.delete(s));
    });
  }

  override close(callback?: (err?: Error) => void): this {
    super.close(callback);
    for (const s of this.sessions) s.shutdown();
    return this;
  }
}

export function createRtmpServer(deps: RtmpDeps): RtmpServer {
  return new RtmpServer(deps);
}
