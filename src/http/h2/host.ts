import { Duplex } from 'node:stream';
import type { Account } from '../../limits/budget.js';
import type { FastReply, FastRequest } from '../frontdoor.js';

/** What an HTTP/2 connection needs from the gateway, and the in-memory link of its relay to Node. */

export interface H2Host {
  answer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null>;
  /** As the front door's: `direct` (bytes sent by sendfile) is always 0 here, TLS encrypts in user space. */
  done(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number): void;
  timed(): boolean;
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


/** A pair of connected in-memory Duplex ends: what one writes, the other reads. */
export function duplexPair(): [Duplex, Duplex] {
  const end = (peer: () => Duplex) => new Duplex({
    read() {},
    write(c: Buffer, _e, cb) {
      peer().push(c);
      cb();
    },
    final(cb) {
      peer().push(null);
      cb();
    },
    destroy(err, cb) {
      peer().destroy();
      cb(err);
    },
  });
  const a: Duplex = end(() => b);
  const b: Duplex = end(() => a);
  return [a, b];
}
