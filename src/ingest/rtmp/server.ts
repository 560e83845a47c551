import net from 'node:net';
import { PlayWaitRoom } from './play-wait.js';
import { RtmpSession, type RtmpDeps } from './session.js';

/**
 * The RTMP listener (SRS's top-level `listen`, 1935 by default): a net.Server whose every
 * connection is an RtmpSession. The gateway binds it with its other listeners and tracks its
 * sockets; closing it also ends the connections that neither publish nor play (those that do
 * are ended by the hub, so their players see a clean end of stream), players waiting for a
 * publisher included.
 */
export class RtmpServer extends net.Server {
  private readonly sessions = new Set<RtmpSession>();
  /** Players of streams not published yet, woken by the hub's publish event. */
  readonly waiting: PlayWaitRoom;

  constructor(deps: Omit<RtmpDeps, 'waiting'>) {
    const waiting = new PlayWaitRoom(deps.hub);
    super((socket) => {
      const s = new RtmpSession(socket, { ...deps, waiting });
      this.sessions.add(s);
      socket.once('close', () => this.sessions.delete(s));
    });
    this.waiting = waiting;
  }

  override close(callback?: (err?: Error) => void): this {
    super.close(callback);
    this.waiting.close();
    for (const s of this.sessions) s.shutdown();
    return this;
  }
}

export function createRtmpServer(deps: Omit<RtmpDeps, 'waiting'>): RtmpServer {
  return new RtmpServer(deps);
}
