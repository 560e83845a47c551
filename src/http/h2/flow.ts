import { OBJECT_OVERHEAD_BYTES } from '../../limits/budget.js';
import type { FastReply, FastRequest } from '../frontdoor.js';
import {
  ACK, DATA, END_STREAM, STREAM_CLOSED, u32, WINDOW_UPDATE, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_MAX_FRAME_SIZE, PADDED,
  PROTOCOL_ERROR, S_ENABLE_PUSH, S_HEADER_TABLE_SIZE, S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, SETTINGS,
} from './frames.js';
import { BACKLOG_PAUSE_BYTES } from './calm.js';
import type { H2Connection } from './connection.js';
import { blockOf } from './request.js';
import type { Stream } from './stream.js';

/**
 * Flow control with the client (RFC 9113 §5.2, §6.9): its SETTINGS, WINDOW_UPDATE and DATA
 * frames, and the pump that sends each stream's queued output (answers from memory, our own
 * 400/431, relayed answers) as far as the windows and the socket's backlog allow. What a relayed stream sends is credited back to Node as it leaves,
 * and its charge given back to the connection's account.
 */

export function onSettings(c: H2Connection, flags: number, id: number, p: Buffer): void {
  if (id !== 0) return c.fail(PROTOCOL_ERROR, 'SETTINGS on a stream');
  if (flags & ACK) {
    if (p.length !== 0) return c.fail(FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
    return;
  }
  if (p.length % 6 !== 0) return c.fail(FRAME_SIZE_ERROR, 'SETTINGS length');
  c.gotSettings = true;
  for (let i = 0; i < p.length; i += 6) {
    const k = p.readUInt16BE(i);
    const v = p.readUInt32BE(i + 2);
    if (k === S_ENABLE_PUSH && v > 1) return c.fail(PROTOCOL_ERROR, 'ENABLE_PUSH');
    if (k === S_INITIAL_WINDOW_SIZE) {
      if (v > MAX_WINDOW) return c.fail(FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE');
      // §6.9.2: the change applies to every open stream's window, which may go negative.
      const delta = v - c.peerWindow;
      c.peerWindow = v;
      for (const s of c.streams.values()) {
        s.window += delta;
        if (s.window > MAX_WINDOW) return c.fail(FLOW_CONTROL_ERROR, 'window overflow');
      }
    } else if (k === S_MAX_FRAME_SIZE) {
      if (v < MIN_MAX_FRAME_SIZE || v > MAX_MAX_FRAME_SIZE) return c.fail(PROTOCOL_ERROR, 'MAX_FRAME_SIZE');
      c.peerMaxFrame = v;
    } else if (k === S_HEADER_TABLE_SIZE) {
      // Our encoder never indexes, but the client's decoder must hear that its new size is in force (RFC 7541 §4.2).
      c.sendTableUpdate = true;
    }
  }
  c.out.frame(SETTINGS, ACK, 0);
  c.pumpAll();
}

export function onWindowUpdate(c: H2Connection, id: number, p: Buffer): void {
  if (p.length !== 4) return c.fail(FRAME_SIZE_ERROR, 'WINDOW_UPDATE length');
  const inc = p.readUInt32BE(0) & 0x7fffffff;
  if (id === 0) {
    if (inc === 0) return c.fail(PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
    c.connWindow += inc;
    if (c.connWindow > MAX_WINDOW) return c.fail(FLOW_CONTROL_ERROR, 'connection window overflow');
    return c.pumpAll();
  }
  if (id > c.lastId) return c.fail(PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
  const s = c.streams.get(id);
  if (s === undefined) return;
  if (inc === 0) return c.streamError(id, PROTOCOL_ERROR);
  s.window += inc;
  if (s.window > MAX_WINDOW) return c.streamError(id, FLOW_CONTROL_ERROR);
  c.pump(s);
}

/** Client DATA: what a relayed body holds here is charged to the account and credited back to the client as Node takes it. */
export function onClientData(c: H2Connection, flags: number, id: number, p: Buffer): void {
  if (id === 0) return c.fail(PROTOCOL_ERROR, 'DATA on stream 0');
  if (id > c.lastId) return c.fail(PROTOCOL_ERROR, 'DATA on an idle stream');
  const body = unpad(c, flags, p);
  if (body === null) return;
  const s = c.streams.get(id);
  // §6.9.1: the whole frame, padding included, counts against the connection window; what
  // nobody will hold is given back at once, a body's octets once Node has taken them.
  const kept = s !== undefined && !s.remoteClosed && s.relayed && !s.nodeDone ? body.length : 0;
  if (p.length - kept > 0) c.out.frame(WINDOW_UPDATE, 0, 0, u32(p.length - kept));
  // §5.1: frames on a stream we reset may still be on their way; ignored.
  if (s === undefined && c.resetByUs.has(id)) return;
  if (s === undefined || s.remoteClosed) {
    // §5.1: DATA on a closed or half-closed (remote) stream.
    return c.streamError(id, STREAM_CLOSED);
  }
  s.recv -= p.length;
  if (s.recv < 0) return c.streamError(id, FLOW_CONTROL_ERROR);
  if (body.length > 0) c.progress.moved();
  const padding = p.length - body.length;
  if (padding > 0) {
    s.recv += padding;
    c.out.frame(WINDOW_UPDATE, 0, id, u32(padding));
  }
  if (flags & END_STREAM) s.remoteClosed = true;
  if (!s.relayed || s.nodeDone) {
    // Nobody reads this body any more: give the window back so the client is not stuck.
    if (body.length > 0 && !s.remoteClosed) {
      s.recv += body.length;
      c.out.frame(WINDOW_UPDATE, 0, id, u32(body.length));
    }
    return c.closeIfDone(s);
  }
  if (body.length > 0) {
    const n = body.length + OBJECT_OVERHEAD_BYTES;
    if (!c.account.take(n)) return c.calm(`memory budget: request body on stream ${id}`);
    s.toNodeBytes += n;
    s.toNode.push(Buffer.from(body));
  }
  if (flags & END_STREAM) s.toNodeEnd = true;
  c.relay.pumpToNode(s);
}

/** The payload without its padding (§6.1), or null after a protocol error. */
export function unpad(c: H2Connection, flags: number, p: Buffer): Buffer | null {
  if ((flags & PADDED) === 0) return p;
  if (p.length < 1 || p[0] >= p.length) {
    c.fail(PROTOCOL_ERROR, 'padding longer than the frame');
    return null;
  }
  return p.subarray(1, p.length - p[0]);
}

/** Sends what the windows allow of a stream's queue. */
export function pump(c: H2Connection, s: Stream): void {
  while (s.queue.length > 0) {
    // What this pass has collected counts too: one read of many requests must not queue a
    // whole flow-control window's worth of bodies before the socket is looked at again.
    if (c.sock.writableLength + c.out.length > BACKLOG_PAUSE_BYTES) {
      c.blocked.add(s);
      return;
    }
    const item = s.queue[0];
    if (!Buffer.isBuffer(item)) {
      s.queue.shift();
      c.writeHeaders(s.id, item.block, item.end);
      if (item.end) s.localClosed = true;
      c.progress.moved();
      continue;
    }
    const last = s.queue.length === 1 && s.endQueued;
    if (item.length === 0) {
      s.queue.shift();
      if (s.relayed) settle(c, s, OBJECT_OVERHEAD_BYTES);
      if (last) endData(s, c);
      continue;
    }
    const n = Math.min(item.length, s.window, c.connWindow, c.peerMaxFrame);
    if (n <= 0) {
      c.blocked.add(s);
      return;
    }
    s.window -= n;
    c.connWindow -= n;
    s.sent += n;
    const whole = n === item.length;
    c.out.frame(DATA, whole && last ? END_STREAM : 0, s.id, whole ? item : item.subarray(0, n));
    c.progress.moved();
    if (whole) s.queue.shift();
    else s.queue[0] = item.subarray(n);
    if (whole && last) s.localClosed = true;
    if (s.relayed) {
      // What has gone to the client may come from Node again.
      settle(c, s, n + (whole ? OBJECT_OVERHEAD_BYTES : 0));
      c.relay.credit(s, n);
    }
  }
  if (s.endQueued && !s.localClosed) endData(s, c);
  c.blocked.delete(s);
  c.closeIfDone(s);
}

/** Gives back what a relayed stream's sent output was charged. */
function settle(c: H2Connection, s: Stream, n: number): void {
  const g = Math.min(n, s.queued);
  s.queued -= g;
  c.account.give(g);
}

function endData(s: Stream, c: H2Connection): void {
  c.out.frame(DATA, END_STREAM, s.id);
  s.localClosed = true;
}

export function answerFast(c: H2Connection, s: Stream, req: FastRequest, r: FastReply, now: number): void {
  const withBody = req.method === 'GET' && r.body.length > 0;
  c.writeHeaders(s.id, blockOf(r, now), !withBody);
  if (withBody) {
    s.queue.push(r.body);
    s.endQueued = true;
    pump(c, s);
  } else {
    s.localClosed = true;
    c.closeIfDone(s);
  }
  c.host.done(req, r, withBody ? r.body.length : 0, 0, 0, now);
}

/**
 * A reply of this connection's own (431 past max_header_size as Node answers an HTTP/1.1 head
 * past it, RFC 9113 §10.5.1; 400 for a target the HTTP/1.1 lanes refuse), ending the stream.
 */
export function answerOwn(c: H2Connection, s: Stream, r: FastReply, req: FastRequest | null): void {
  s.resetAfter = true;
  c.writeHeaders(s.id, blockOf(r), false);
  s.queue.push(r.body);
  s.endQueued = true;
  pump(c, s);
  if (req !== null) c.host.done(req, r, r.body.length, 0, 0);
}
