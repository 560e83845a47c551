import { Duplex } from 'node:stream';
import type { Account } from '../../limits/budget.js';
import type { FastReply, FastRequest } from '../frontdoor.js';
import type { Out } from './frames.js';
import type { Stream } from './stream.js';

/** What an HTTP/2 connection needs from the gateway, what its relay to Node needs of it, and that relay's in-memory link. */

export interface H2Host {
  answer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null>;
  /** As the front door's: `direct` (bytes sent by sendfile) is always 0 here, TLS encrypts in user space. */
  done(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number, at?: number): void;
  /** Gives Node's http2 server the inner end of a relay link, as if it were a new h2 connection. */
  relay(inner: Duplex): void;
  keepAliveTimeoutMs(): number;
  headerTimeoutMs(): number;
  /** With streams open, how long they may make no progress before the connection is closed. */
  requestTimeoutMs(): number;
  maxHeaderBytes(): number;
  /** Headers whose presence means the request is not a plain cache hit. */
  notPlain: ReadonlySet<string>;
  /** This connection's memory account (its own cap, drawing on the pool of connections not yet trusted). */
  account: Account;
  /** One line when a client is cut off for a budget. */
  warn(line: string): void;
}

/** What the relay needs of the client-facing connection. */
export interface RelayOwner {
  readonly streams: Map<number, Stream>;
  /** Frames to the client. */
  readonly out: Out;
  readonly account: Account;
  /** The client's connection is closed or closing for good. */
  isDead(): boolean;
  /** Frames of the client's last read wait for a later turn (the connection's per-turn bound). */
  framesHeld(): boolean;
  /** Gives Node's http2 server the inner end, as a new h2 connection. */
  connect(inner: Duplex): void;
  pump(s: Stream): void;
  forget(s: Stream): void;
  closeIfDone(s: Stream): void;
  shutdown(): void;
  flush(): void;
  /** Over the memory budget: the client is cut off. */
  overBudget(what: string): void;
}

/**
 * A pair of connected in-memory Duplex ends: what one writes, the other reads, on a later tick.
 *
 * Never in the writer's own call: Node's http2 session writes to its socket with a write marked in
 * progress and stops reading from it only once that write call returns. Bytes that reach it in
 * between (the relay answering synchronously what Node wrote: a WINDOW_UPDATE Node sends when a
 * handler resumes its request body lets the relay pump more DATA at once) are parsed with the
 * write in progress and reading not stopped, and node_http2.cc's OnDataChunkReceived aborts the
 * process (`CHECK(session->is_reading_stopped())`). A real socket never delivers inside a write;
 * neither does this link. A tick runs only once the outermost callback has returned, so no
 * session frame is on the stack when the bytes arrive, and the order of writes (and of the end)
 * is kept.
 */
export function duplexPair(): [Duplex, Duplex] {
  const end = (peer: () => Duplex) => {
    /** Chunks written and not yet handed to the peer; null is the end. */
    let pending: (Buffer | null)[] = [];
    const deliver = (): void => {
      const batch = pending;
      pending = [];
      const p = peer();
      for (const c of batch) if (!p.destroyed) p.push(c);
    };
    const queue = (c: Buffer | null): void => {
      if (pending.length === 0) process.nextTick(deliver);
      pending.push(c);
    };
    return new Duplex({
      read() {},
      write(c: Buffer, _e, cb) {
        queue(c);
        cb();
      },
      final(cb) {
        queue(null);
        cb();
      },
      destroy(err, cb) {
        pending = [];
        peer().destroy();
        cb(err);
      },
    });
  };
  const a: Duplex = end(() => b);
  const b: Duplex = end(() => a);
  return [a, b];
}
