import type { Socket } from 'node:net';
import type { Hub } from '../../live/hub.js';
import type { StreamName } from '../../live/types.js';
import type { Logger } from '../../log.js';
import type { Budget } from '../../limits/budget.js';
import type { AccessControl, Verdict } from '../../auth/policy.js';
import { EcmaArray, type AmfObject, type AmfValue } from './amf0.js';
import type { OutMessage } from './chunk.js';
import type { PlayWaitRoom } from './play-wait.js';

/**
 * What the halves of an RTMP session share: the dependencies a listener hands every connection,
 * its limits, and the narrow view of the connection (RtmpConn) that its publish and play sides
 * act through, so each side is a file of its own and the connection keeps the socket's lifecycle.
 */

export interface RtmpDeps {
  hub: Hub;
  log: Logger;
  /** The policy chain (src/auth/policy.ts): on_connect, then each publish or play, once. */
  access: AccessControl;
  /** The vhost a connect names, by tcUrl host (an unknown host is the default vhost). */
  vhostFor: (host: string) => string;
  /** The pool that connections not yet authorised draw on (the gateway's budgets.unauthorized). */
  pool: Budget | null;
  /** Read at each new connection, so a reload applies to the next ones. */
  limits: () => RtmpLimits;
  /** Players waiting for a publisher (the listener's). */
  waiting: PlayWaitRoom;
}

export interface RtmpLimits {
  /** The handshake and the connect command must both arrive within this (limits.header_timeout). */
  headerTimeoutMs: number;
  /** Memory one connection may hold before it is authorised to publish (limits.connection_memory). */
  connectionMemoryBytes: number;
  /** Silence before publish or play, and time from connect to publish or play (default IDLE_TIMEOUT_MS). */
  idleTimeoutMs: number;
  /** How long a play waits for the stream's publisher, by vhost (play.wait_publisher; 0 = not at all). */
  waitPublisherMs: (vhost: string) => number;
}

/** The connection as its publish and play sides see it. */
export interface RtmpConn {
  readonly socket: Socket;
  readonly deps: RtmpDeps;
  readonly ip: string;
  readonly limits: RtmpLimits;
  readonly tcUrl: string;
  readonly pageUrl: string;
  /** The connection is ending (a refusal or an end of stream is being flushed). */
  readonly closing: boolean;
  /** A publish or play is being authorised, acquired or waited for: no second one may start. */
  acquiring: boolean;
  /** "rtmp 1.2.3.4 live/a" for log lines. */
  who(): string;
  /** Charges what a waiting player holds to the connection's current account (false = over budget). */
  take(bytes: number): boolean;
  give(bytes: number): void;
  status(streamId: number, level: 'status' | 'error', code: string, description: string): void;
  send(msgs: OutMessage[]): void;
  sendControl(type: number, payload: Buffer): void;
  closeAfterFlush(): void;
  fail(err: unknown): void;
  /** The policy chain for a publish or play, after the connection's on_connect. */
  authorise(action: 'publish' | 'play', name: StreamName, query: URLSearchParams, streamId?: string): Promise<Verdict>;
  /** Publishing or playing started: the connect-to-publish deadline no longer applies. */
  clearDeadline(): void;
  /** Back from a publish or play: the idle timer and deadline apply again. */
  idleAgain(): void;
  /** Publishing is authorised: unfinished messages move off the anonymous pool. */
  trusted(): void;
}

/** `name?a=b` split at the query, as app and stream names carry one (SRS's `?vhost=`, our `?secret=`). */
export function splitQuery(s: string): { path: string; query: URLSearchParams } {
  const q = s.indexOf('?');
  return q < 0 ? { path: s, query: new URLSearchParams() } : { path: s.slice(0, q), query: new URLSearchParams(s.slice(q + 1)) };
}

export function isObject(v: AmfValue): v is AmfObject {
  return typeof v === 'object' && v !== null && !(v instanceof Date) && !(v instanceof EcmaArray) && !Array.isArray(v);
}

export function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v);
  return b;
}

/** The host of an rtmp:// URL, or "" when it has none. */
export function hostOf(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/\[?([^/\]:?]*)/i.exec(url);
  return m ? m[1] : '';
}

/**
 * What one connection's bytes may make the chunk reader do in one event-loop turn before the rest
 * waits for the next. libuv reads a ready socket up to 32 times (64 KiB each) in one go, so one
 * peer with megabytes in flight made a turn parse up to 2 MiB of 128-byte chunks while every
 * other client waited; 64 flooding connections at 64 KiB each still stalled others by 40-75 ms
 * of CPU a turn. 16 KiB is a few hundred chunks at worst; a 5 Mbit/s publisher needs 40 turns a
 * second, a few microseconds each.
 */
export const TURN_BYTES = 16 * 1024;

/**
 * Hands the socket's bytes to `onData` at most TURN_BYTES a turn: past that, the socket is paused
 * and the rest of its read handled on setImmediate, after the other connections' reads.
 */
export function readFairly(socket: Socket, onData: (d: Buffer) => void): void {
  /** Bytes handed on since the last turn boundary, and what waits for the next turn. */
  let used = 0;
  let rest: Buffer | null = null;
  let timer: NodeJS.Immediate | null = null;
  const handle = (d: Buffer): void => {
    const room = TURN_BYTES - used;
    const now = d.length > room ? d.subarray(0, room) : d;
    used += now.length;
    if (now.length > 0) onData(now);
    if (now.length < d.length) rest = d.subarray(now.length);
    if (used >= TURN_BYTES && timer === null && !socket.destroyed) {
      socket.pause();
      timer = setImmediate(nextTurn);
    }
  };
  const nextTurn = (): void => {
    timer = null;
    used = 0;
    const d = rest;
    rest = null;
    if (socket.destroyed) return;
    if (d !== null) handle(d);
    if (timer === null && !socket.destroyed) socket.resume();
  };
  socket.on('data', (d: Buffer) => {
    // A read that was under way when the socket paused waits behind what is held.
    if (rest !== null) rest = Buffer.concat([rest, d]);
    else handle(d);
  });
  // The peer's FIN is announced even while the socket is paused, and the socket closes soon
  // after: what is held (a publisher's last media) is handled now, before the session closes,
  // and before Node's own 'end' listener makes the socket refuse writes (an acknowledgement).
  socket.prependListener('end', () => {
    const d = rest;
    rest = null;
    if (d !== null && !socket.destroyed) onData(d);
  });
}
