import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/**
 * sendfile(2) for the front door's large bodies, through the optional native addon in native/
 * (built by `npm ci`'s install script with node-gyp). Where it did not build — no compiler, not
 * Linux — `addon` is null and every body goes out through Node's socket write, as before.
 */
interface Addon {
  /** A sealed memfd holding a copy of `bytes` from `offset` on: its fd, or -errno. */
  memfd(bytes: Buffer, offset: number): number;
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
 *
 * The copy is made on the first send, with the body placed at the page offset the head leaves:
 * the body's pages then sit at the same offsets modulo 4 KB as its bytes in the response, so a
 * client reading the response in page multiples copies whole pages, not three pieces per read
 * (measured with wrk's 8 KB reads on 512 KB bodies: its kernel copy to user memory took 12–13% of
 * its CPU, against 13–16% with the body at offset 0, and wrk's answers per second went from 0.96×
 * to 1.03–1.06× NGINX's in alternating rounds; the head-length dependence below is gone too).
 * With the body at offset 0, the client's copy cost varied with the head's length: heads of
 * 273–303 bytes (streamgate's for a .ts file is 288) cost wrk 15–16% of its CPU in that copy,
 * other lengths 13%.
 * A send whose head has another length (Connection: close, say) goes out from the same copy, just
 * not aligned; after REALIGN_AFTER such sends in a row the copy is made again at their offset, so
 * the first request does not decide for good which clients get whole pages.
 *
 * `fd` is -1 when the copy is released (the cache entry was replaced or evicted), was refused by
 * its admit check, or could not be made (out of fds): the body then goes out from memory, and a
 * closed fd number, which the kernel may already have given to another file or socket, is never
 * used.
 */
export class DirectBody {
  /** The memfd; UNMADE until the first send, -1 once released or when it was refused or could not be made. */
  fd = UNMADE;
  /** Where the body starts in the memfd. */
  offset = 0;
  /** Sends in a row whose head left another page offset than the copy's. */
  private misses = 0;
  private constructor(
    private bytes: Buffer | null,
    private admit: (() => boolean) | null,
  ) {}

  /**
   * A body to send from a memfd copy, or null when the addon is missing. `admit`, asked once just
   * before the copy is first made, may refuse it (a budget): the body then goes out by write(2).
   */
  static of(bytes: Buffer, admit: (() => boolean) | null = null): DirectBody | null {
    return addon === null ? null : new DirectBody(bytes, admit);
  }

  /** The memfd for a response whose head is `headLength` bytes, made on the first call. */
  fdFor(headLength: number): number {
    const offset = headLength % PAGE_BYTES;
    if (this.fd >= 0) {
      if (offset === this.offset) {
        this.misses = 0;
        return this.fd;
      }
      if (++this.misses < REALIGN_AFTER) return this.fd;
      // Only this object uses the fd, and only within a synchronous send: closing it now is safe.
      closeSync(this.fd);
      this.fd = UNMADE;
      this.misses = 0;
    }
    if (this.fd !== UNMADE) return this.fd;
    if (this.admit !== null) {
      const admitted = this.admit();
      this.admit = null;
      if (!admitted) return (this.fd = -1);
    }
    const fd = addon!.memfd(this.bytes!, offset);
    this.offset = offset;
    this.fd = fd >= 0 ? fd : -1;
    return this.fd;
  }

  release(): void {
    if (this.bytes === null) return;
    const fd = this.fd;
    this.bytes = null;
    this.fd = -1;
    if (fd >= 0) closeSync(fd);
  }
}

/** No memfd made yet. */
const UNMADE = -2;
/** The page size the body is aligned to (x86-64 and most arm64 kernels). */
const PAGE_BYTES = 4096;
/**
 * Sends in a row with another head offset before the copy is made again at theirs: a mix where
 * the copy's own offset is common never gets there, a population that changed soon does.
 */
export const REALIGN_AFTER = 32;

/**
 * Writes `head` and then `length` bytes of `body` (from 0) on a plain TCP socket with nothing
 * queued in Node, by send + sendfile straight on its fd. Returns the bytes written — possibly
 * fewer than all when the socket buffer filled up; the caller writes the rest through Node, which
 * keeps the order and waits for writability — NOT_DIRECT when this path does not apply (TLS, no
 * fd, bytes already queued in Node, no copy: the caller writes everything), or SEND_FAILED.
 */
export function sendDirect(sock: Socket, head: Buffer, body: DirectBody, length: number): number {
  const handle = (sock as Socket & { _handle?: { fd?: number; writeQueueSize?: number } | null })._handle;
  const fd = handle?.fd;
  if (addon === null || typeof fd !== 'number' || fd < 0 || sock.writableLength !== 0 || handle!.writeQueueSize !== 0) return NOT_DIRECT;
  const copy = body.fdFor(head.length);
  if (copy < 0) return NOT_DIRECT;
  const n = addon.send(fd, head, copy, body.offset, length);
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
