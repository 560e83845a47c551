import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/**
 * sendfile(2) for the front door's large bodies, through the optional native addon in native/
 * (built by `npm ci`'s install script with node-gyp). Where it did not build — no compiler, not
 * Linux — `addon` is null and every body goes out through Node's socket write, as before.
 */
interface Addon {
  /** A sealed memfd holding a copy of `bytes`: its fd, or -errno. */
  memfd(bytes: Buffer): number;
  /** Writes `head`, then `length` bytes of `fd` from `offset`; bytes written (short on a full socket buffer), or -errno. */
  send(sock: number, head: Buffer, fd: number, offset: number, length: number): number;
}

function load(): Addon | null {
  try {
    // From dist/src/net/ up to the package root.
    return createRequire(import.meta.url)('../../../build/Release/sendfile.node') as Addon;
  } catch {
    return null;
  }
}

const addon = load();

/** Whether the addon is built and loaded (STREAMGATE_NO_SENDFILE=1 then still turns it off per gateway). */
export const sendfileBuilt = addon !== null;

/**
 * A body's bytes held in a sealed memfd as well as in memory, so sendfile can hand them to TCP.
 * `fd` becomes -1 when the copy is released (the cache entry was replaced or evicted): a reply
 * object that outlives its entry then falls back to the in-memory bytes, and a closed fd number,
 * which the kernel may already have given to another file or socket, is never used.
 */
export class DirectBody {
  private constructor(public fd: number) {}

  /** The copy, or null when the addon is missing or the memfd could not be made (out of fds). */
  static of(bytes: Buffer): DirectBody | null {
    if (addon === null) return null;
    const fd = addon.memfd(bytes);
    return fd >= 0 ? new DirectBody(fd) : null;
  }

  release(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    closeSync(fd);
  }
}

/**
 * Writes `head` and then `length` bytes of `body` (from 0) on a plain TCP socket with nothing
 * queued in Node, by send + sendfile straight on its fd. Returns the bytes written — possibly
 * fewer than all when the socket buffer filled up; the caller writes the rest through Node, which
 * keeps the order and waits for writability — NOT_DIRECT when this path does not apply (TLS, no
 * fd, bytes already queued in Node: the caller writes everything), or SEND_FAILED.
 */
export function sendDirect(sock: Socket, head: Buffer, body: DirectBody, length: number): number {
  const handle = (sock as Socket & { _handle?: { fd?: number; writeQueueSize?: number } | null })._handle;
  const fd = handle?.fd;
  if (addon === null || body.fd < 0 || typeof fd !== 'number' || fd < 0 || sock.writableLength !== 0 || handle!.writeQueueSize !== 0) return NOT_DIRECT;
  const n = addon.send(fd, head, body.fd, 0, length);
  return n < 0 ? SEND_FAILED : n;
}

/**
 * Bodies from this size up are worth a sealed memfd copy for sendfile (cached files and live HLS
 * segments alike). Measured with wrk, 50 connections: 32 KB bodies went faster by send + sendfile
 * than by one writev in every round, 20 KB ones were a draw (two system calls against a copy that
 * small).
 */
export const DIRECT_MIN_BYTES = 32 * 1024;

/** sendDirect did not write: the caller writes everything. */
export const NOT_DIRECT = -1;
/** sendDirect hit a socket error (reset, broken pipe): the connection is dead. */
export const SEND_FAILED = -2;
