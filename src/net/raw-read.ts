import type { Socket } from 'node:net';

/**
 * Reads straight from a plain TCP socket's libuv handle to one consumer, past the Readable
 * stream: Node calls the handle's `onread` with each chunk, which normally goes through
 * `push`, the stream's buffer, a deferred `read(0)` and a 'data' event. For a consumer that takes
 * every chunk as it comes (the front door while it owns a connection) that machinery was about a
 * tenth of the CPU of a proxied request (measured on the /api/ row).
 *
 * Only chunks the stream would hand straight on go past it: while the socket is paused or holds
 * chunks of its own, and for the end of the stream and errors, Node's own `onread` runs, so order,
 * back-pressure and 'end' are Node's. `release()` gives the handle back before the socket changes
 * hands.
 *
 * This reaches into Node (the handle's `onread`, `process.binding('stream_wrap')`'s read state):
 * where they are missing or differ, `hookReads` returns null and the socket reads as before.
 */

interface StreamWrapState {
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}

interface ReadHandle {
  onread: (this: ReadHandle, ab: ArrayBuffer | undefined) => unknown;
}

function load(): StreamWrapState | null {
  try {
    const b = (process as unknown as { binding?(name: string): unknown }).binding?.('stream_wrap') as Partial<StreamWrapState> | undefined;
    if (!(b?.streamBaseState instanceof Int32Array) || typeof b.kReadBytesOrError !== 'number' || typeof b.kArrayBufferOffset !== 'number') return null;
    return b as StreamWrapState;
  } catch {
    return null;
  }
}

const state = load();

/** A socket's reads going to one consumer; `release()` puts Node's reader back. */
export interface ReadHook {
  release(): void;
}

/**
 * Sends each chunk read on `sock` straight to `take` while the stream would have passed it on
 * at once as a 'data' event to `take` alone (its one listener); null when the socket is not plain TCP or Node does not offer it.
 */
export function hookReads(sock: Socket, take: (chunk: Buffer) => void): ReadHook | null {
  const handle = (sock as Socket & { _handle?: ReadHandle | null })._handle;
  const touch = (sock as Socket & { _unrefTimer?: () => void })._unrefTimer;
  if (state === null || handle == null || typeof handle.onread !== 'function' || typeof touch !== 'function' || (sock as Socket & { encrypted?: boolean }).encrypted === true) return null;
  const nodeRead = handle.onread;
  const st = state.streamBaseState;
  const { kReadBytesOrError, kArrayBufferOffset } = state;
  handle.onread = function onread(this: ReadHandle, ab: ArrayBuffer | undefined): unknown {
    const n = st[kReadBytesOrError];
    if (n <= 0 || ab === undefined || sock.destroyed || sock.readableFlowing !== true || sock.readableLength > 0 || sock.listenerCount('data') !== 1) return nodeRead.call(this, ab);
    // What Node's reader does first: a read restarts the socket's idle timer.
    touch.call(sock);
    take(Buffer.from(ab, st[kArrayBufferOffset], n));
    return undefined;
  };
  return {
    release() {
      if (handle.onread !== nodeRead) handle.onread = nodeRead;
    },
  };
}
