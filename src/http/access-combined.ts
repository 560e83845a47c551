import { clf, combinedTexts, secondsText, type LineFields } from './accesslog.js';

/**
 * Combined lines written as bytes, straight into the access log's batch, from pieces made once
 * per request head. A keep-alive client repeats its head (a player polling a playlist, a load
 * tool one URL), and all but the time, the status, the size and the duration of its line is the
 * same each time: those pieces are encoded once and copied, the four numbers written as digits,
 * so a line makes no string and no object. Measured on 1 KB answers from the front door, the
 * string line (built, then encoded by Buffer#write) was two thirds of the log's cost per request.
 */

/**
 * The pieces of one request head's combined line, and the line up to its duration as last
 * written: a client repeating its head within the same second and getting the same answer (a
 * load tool; a player's requests at a segment boundary) costs one copy and six digits.
 */
export class CombinedPieces {
  /** The most bytes a line takes, its newline included. */
  readonly max: number;
  /** `127.0.0.1 - - [` */
  private readonly lead: Uint8Array;
  /** `] "GET /live/a.m3u8 HTTP/1.1" ` */
  private readonly request: Uint8Array;
  /** ` "referer" "agent" ` */
  private readonly tail: Uint8Array;
  /** The line up to its duration for `second`, `status` and `bytes`. */
  private readonly made: Buffer;
  /** The part of `made` in use. */
  private view: Uint8Array;
  private second = -1;
  private status = -1;
  private bytes = -1;

  constructor(f: LineFields) {
    const [lead, request, tail] = combinedTexts(f);
    const a = Buffer.byteLength(lead);
    const b = a + Buffer.byteLength(request);
    const c = b + Buffer.byteLength(tail);
    this.max = c + NUMBERS_MAX_BYTES;
    // One allocation of its own per head: pieces live as long as the connection keeps the head,
    // and a slice of Node's shared pool would pin the whole 8 KiB slab for that long.
    const all = Buffer.allocUnsafeSlow(c + this.max);
    all.write(lead, 0);
    all.write(request, a);
    all.write(tail, b);
    this.lead = all.subarray(0, a);
    this.request = all.subarray(a, b);
    this.tail = all.subarray(b, c);
    this.made = all.subarray(c);
    this.view = this.made.subarray(0, 0);
  }

  /**
   * Writes the line (newline included) at `at` in `buf`, which has `max` bytes of room there;
   * returns where it ends. The same text as formatAccess() gives for the same fields.
   */
  write(buf: Uint8Array, at: number, time: ClfClock, status: number, bytes: number, ms: number): number {
    if (time.second !== this.second || status !== this.status || bytes !== this.bytes) this.remake(time, status, bytes);
    buf.set(this.view, at);
    return writeDuration(buf, at + this.view.length, ms);
  }

  private remake(time: ClfClock, status: number, bytes: number): void {
    const m = this.made;
    m.set(this.lead, 0);
    let at = this.lead.length;
    m.set(time.bytes, at);
    at += time.bytes.length;
    m.set(this.request, at);
    at += this.request.length;
    at = writeUint(m, at, status);
    m[at++] = 0x20;
    at = writeUint(m, at, bytes);
    m.set(this.tail, at);
    this.view = m.subarray(0, at + this.tail.length);
    this.second = time.second;
    this.status = status;
    this.bytes = bytes;
  }
}

/**
 * What a line adds to its pieces at most: the time (26), the status and the size (up to 16
 * digits each, with the space between), the duration (up to 20 characters) and the newline.
 */
const NUMBERS_MAX_BYTES = 26 + 16 + 1 + 16 + 20 + 1;

/** The current second's CLF time as bytes, remade when the second changes. */
export class ClfClock {
  second = -1;
  readonly bytes = Buffer.alloc(26);

  /** This clock at `now` (ms): the bytes remade when its second is not the one there. */
  at(now: number): this {
    const sec = Math.floor(now / 1000);
    if (sec !== this.second) {
      this.second = sec;
      this.bytes.write(clf(new Date(sec * 1000)), 0, 'latin1');
    }
    return this;
  }
}

/** The duration in seconds (NGINX's $request_time, millisecond resolution) and the newline. */
function writeDuration(buf: Uint8Array, at: number, ms: number): number {
  const n = Math.round(ms);
  if (n >= 0 && n < 1000) {
    buf[at] = 0x30;
    buf[at + 1] = 0x2e;
    buf[at + 2] = 0x30 + ((n / 100) | 0);
    buf[at + 3] = 0x30 + (((n / 10) | 0) % 10);
    buf[at + 4] = 0x30 + (n % 10);
    at += 5;
  } else {
    const text = secondsText(ms);
    for (let i = 0; i < text.length; i++) buf[at + i] = text.charCodeAt(i);
    at += text.length;
  }
  buf[at] = 0x0a;
  return at + 1;
}

/** The line CombinedPieces#write writes, as a string (for a log without a batch: tests' memory logger). */
export function combinedLine(p: CombinedPieces, time: ClfClock, status: number, bytes: number, ms: number): string {
  const buf = Buffer.allocUnsafe(p.max);
  return buf.toString('utf8', 0, p.write(buf, 0, time, status, bytes, ms) - 1);
}

/** A non-negative integer in decimal; sizes past 2^31 take the slow way. */
function writeUint(buf: Buffer, at: number, n: number): number {
  if (!(n >= 0 && n < 0x80000000)) return at + buf.write(String(Math.trunc(n)), at, 'latin1');
  let digits = 1;
  for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
  for (let i = at + digits - 1; i >= at; i--) {
    buf[i] = 0x30 + (n % 10);
    n = (n / 10) | 0;
  }
  return at + digits;
}
