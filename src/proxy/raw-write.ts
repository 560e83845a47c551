import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

/**
 * Writes for the proxy lane straight on a socket's libuv handle, as Node's own `socket.write`
 * ends up doing, without the Writable stream in between. Per proxied request the lane writes
 * twice (the request upstream, the answer to the client); through the stream each write also
 * ran the Writable state machine, a write-request object, a socket-timer refresh and a deferred
 * callback (measured on the /api/ row: about a tenth of the lane's JavaScript time). Here a write
 * is one call on the handle (which counts its bytes for the socket's `bytesWritten`, as for Node's
 * own writes); libuv writes at once what the socket buffer takes and queues the rest
 * in order, so a later `socket.write` (or `end`, whose shutdown waits for the queue) still goes
 * out after it.
 *
 * This reaches into Node: the handle's writeBuffer/writev and the WriteWrap request class of
 * `process.binding('stream_wrap')`, which Node 20 and 24 keep for compatibility. Where they are
 * missing or differ, `RAW_WRITES` is false, the gateway says so once at start-up, and every write
 * goes through `socket.write` as before.
 */

/** What libuv's stream handle offers (node's LibuvStreamWrap). */
interface StreamHandle {
  writeBuffer(req: WriteReq, data: Buffer): number;
  writev(req: WriteReq, chunks: Buffer[], allBuffers: boolean): number;
  readonly writeQueueSize: number;
}

/** A write request as libuv completes it: `oncomplete(status)` runs with the request as `this`. */
interface WriteReq {
  handle: StreamHandle | null;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  /** What libuv still reads from: kept alive until the write completes. */
  buffer: Buffer | Buffer[] | null;
  /** Ours: told when a queued write completed (0) or failed (a negative errno). */
  done: WriteOwner | null;
}

/** Whoever wrote: told when a write libuv queued has gone (status 0) or failed (a negative errno). */
export interface WriteOwner {
  written(status: number): void;
}

interface StreamWrapBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
}

function load(): StreamWrapBinding | null {
  try {
    const binding = (process as unknown as { binding?(name: string): unknown }).binding?.('stream_wrap') as Partial<StreamWrapBinding> | undefined;
    if (typeof binding?.WriteWrap !== 'function' || !(binding.streamBaseState instanceof Int32Array) || typeof binding.kLastWriteWasAsync !== 'number') return null;
    return binding as StreamWrapBinding;
  } catch {
    return null;
  }
}

const binding = load();

/** Whether writes go straight to the handle (false: through `socket.write`, as Node's own path). */
export const RAW_WRITES = binding !== null;

/** Written whole, now. */
export const WRITTEN = 1;
/** Part of it waits in libuv's queue: `done` is called when it has gone (or failed). */
export const QUEUED = 0;
/** Not attempted (TLS, no handle, bytes already waiting in Node, closing): the caller uses `socket.write`. */
export const NOT_RAW = -1;

function onComplete(this: WriteReq, status: number): void {
  const done = this.done;
  this.done = null;
  this.buffer = null;
  this.handle = null;
  done?.written(status);
}

function handleOf(sock: Socket): StreamHandle | null {
  return ((sock as Socket & { _handle?: StreamHandle | null })._handle ?? null);
}

/** Bytes the socket has not handed to the kernel yet, in Node's stream or in libuv's queue. */
export function queued(sock: Socket): boolean {
  if (sock.writableLength > 0) return true;
  const h = handleOf(sock);
  return h !== null && h.writeQueueSize > 0;
}

/**
 * Writes `data` (one buffer, or several in one writev) on `sock`'s handle when nothing is waiting
 * ahead of it: WRITTEN, QUEUED (then `done.written` follows), or NOT_RAW for the caller to use
 * `socket.write`. A failed write destroys the socket with the error, as Node's own write does.
 */
export function rawWrite(sock: Socket, data: Buffer | Buffer[], done: WriteOwner | null): number {
  // Plain TCP only: a TLS socket's handle encrypts and completes its writes on its own schedule.
  if (binding === null || sock.destroyed || sock.connecting || !sock.writable || (sock as Socket & { encrypted?: boolean }).encrypted === true) return NOT_RAW;
  const h = handleOf(sock);
  if (h === null || sock.writableLength > 0 || h.writeQueueSize > 0) return NOT_RAW;
  // A write libuv completes at once never touches its request object (node's StreamBase::Write
  // tries the write first), so one spare serves them all; a write that is queued takes it over
  // (node binds its request to it until completion), and the next write gets a new spare.
  const req = spare ?? newRequest(binding);
  req.handle = h;
  const err = Array.isArray(data) ? h.writev(req, data, true) : h.writeBuffer(req, data);
  if (err !== 0) {
    // Node may have bound the request before the write failed: it is not used again.
    spare = null;
    sock.destroy(Object.assign(new Error(`write ${getSystemErrorName(err)}`), { code: getSystemErrorName(err), errno: err, syscall: 'write' }));
    return WRITTEN;
  }
  if (binding.streamBaseState[binding.kLastWriteWasAsync] === 0) {
    req.handle = null;
    spare = req;
    return WRITTEN;
  }
  spare = null;
  req.async = true;
  req.buffer = data;
  req.done = done;
  return QUEUED;
}

/** The request object for the next write; null once a queued write has taken it. */
let spare: WriteReq | null = null;

function newRequest(b: StreamWrapBinding): WriteReq {
  const req = new b.WriteWrap();
  req.handle = null;
  req.oncomplete = onComplete;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  req.done = null;
  return req;
}
