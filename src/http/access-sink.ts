import { closeSync, openSync, writeSync, writev } from 'node:fs';
import { resolve } from 'node:path';
import type { AccessLogConfig } from '../config/access-log.js';
import type { Logger } from '../log.js';
import { LineBatch, skipBytes } from './access-batch.js';
import type { ClfClock, CombinedPieces } from './access-combined.js';

/**
 * Where access lines go: a file (NGINX's `access_log … buffer=64k flush=1s`) or an inherited fd
 * such as stdout. Lines are batched in memory and written by one asynchronous write at a time, so
 * a request never waits on the disk or on whoever reads the pipe: Node writes to a pipe or a file
 * on stdout synchronously, and a reader that stops reading would otherwise stop every request.
 *
 * Bound: while a write is in flight, lines wait in memory up to `maxPendingBytes`; past it they are
 * dropped and counted (`dropped`, exported on /metrics). A failed write (ENOSPC, EIO, a file that was
 * removed under a read-only directory) drops its batch, is reported once, and writing resumes with
 * the next batch: a full disk costs lines, not service.
 */

export interface AccessSinkOptions {
  /** A file to append to (created 0644), or an fd already open (1 = stdout). */
  target: { path: string } | { fd: number };
  /** Flush once this many bytes wait (NGINX's `buffer=`). */
  bufferBytes: number;
  /** Flush lines no older than this (NGINX's `flush=`). */
  flushMs: number;
  /** One line for the operator when writing fails or recovers. */
  report(msg: string): void;
}

/** Lines held while a write is in flight, as a multiple of the buffer (at least 1 MiB). */
const PENDING_BUFFERS = 16;
const MIN_PENDING_BYTES = 1024 * 1024;
/** How soon a write to a full non-blocking pipe is tried again. */
const EAGAIN_RETRY_MS = 10;

export class AccessSink {
  /** Lines dropped because the target could not keep up or refused them. */
  dropped = 0;
  /** Lines waiting, already encoded (src/http/access-batch.ts). */
  private readonly pending: LineBatch;
  private inFlight = false;
  private timer: NodeJS.Timeout | null = null;
  private fd: number;
  private readonly ownsFd: boolean;
  private failing = false;
  private reopenWanted = false;
  private closed = false;
  private readonly maxPendingBytes: number;
  /** Resolves the wait of end() when the write in flight completes. */
  private settled: (() => void) | null = null;

  constructor(private readonly opts: AccessSinkOptions) {
    this.ownsFd = 'path' in opts.target;
    this.fd = 'path' in opts.target ? openSync(opts.target.path, 'a', 0o644) : opts.target.fd;
    this.maxPendingBytes = Math.max(MIN_PENDING_BYTES, PENDING_BUFFERS * opts.bufferBytes);
    this.pending = new LineBatch(opts.bufferBytes);
  }

  sameBatching(cfg: { bufferBytes: number; flushMs: number }): boolean {
    return cfg.bufferBytes === this.opts.bufferBytes && cfg.flushMs === this.opts.flushMs;
  }

  get path(): string | null {
    return 'path' in this.opts.target ? this.opts.target.path : null;
  }

  write(line: string): void {
    if (this.closed) return;
    if (this.pending.bytes + line.length + 1 > this.maxPendingBytes) {
      this.dropped++;
      return;
    }
    this.pending.add(line);
    this.added();
  }

  /** A combined line from its pieces (src/http/access-combined.ts), written as bytes into the batch. */
  writeCombined(p: CombinedPieces, time: ClfClock, status: number, bytes: number, ms: number): void {
    if (this.closed) return;
    const pending = this.pending;
    if (pending.bytes + p.max > this.maxPendingBytes) {
      this.dropped++;
      return;
    }
    const buf = pending.reserve(p.max);
    pending.commit(p.write(buf, pending.used, time, status, bytes, ms));
    this.added();
  }

  /** A line was added: flush by size now, or by time when the first line of a batch is flushMs old. */
  private added(): void {
    if (this.pending.bytes >= this.opts.bufferBytes) this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.opts.flushMs);
      this.timer.unref();
    }
  }

  /** Start writing what waits, unless a write is already in flight (its end starts the next). */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.inFlight || this.pending.lines === 0 || this.closed) return;
    const { data, lines } = this.pending.take();
    this.inFlight = true;
    this.writeAll(data, lines);
  }

  private writeAll(data: Buffer[], lines: number): void {
    writev(this.fd, data, null, (err, n) => {
      if (err?.code === 'EAGAIN' && !this.closed) {
        // A non-blocking pipe (stdout is one when Node made it so) whose reader is behind: try
        // again shortly; lines arriving meanwhile wait within maxPendingBytes, then are dropped.
        setTimeout(() => this.writeAll(data, lines), EAGAIN_RETRY_MS).unref();
        return;
      }
      if (err) {
        this.dropped += lines;
        if (!this.failing) this.opts.report(`access log: writing ${this.path ?? `fd ${this.fd}`} failed (${err.code ?? err.message}); lines are dropped until it works again`);
        this.failing = true;
      } else if (n < total(data)) {
        this.writeAll(skipBytes(data, n), lines);
        return;
      } else if (this.failing) {
        this.failing = false;
        this.opts.report(`access log: writing ${this.path ?? `fd ${this.fd}`} works again (${this.dropped} lines dropped so far)`);
      }
      this.inFlight = false;
      if (this.settled !== null) {
        this.settled();
        this.settled = null;
        return;
      }
      if (this.reopenWanted) this.reopenNow();
      if (this.pending.bytes >= this.opts.bufferBytes) this.flush();
      else if (this.pending.lines > 0 && this.timer === null) {
        this.timer = setTimeout(() => this.flush(), this.opts.flushMs);
        this.timer.unref();
      }
    });
  }

  /**
   * SIGUSR1: open the file again by its name, as NGINX does after logrotate moved it. Done between
   * writes, so no batch is split across the old and the new file.
   */
  reopen(): void {
    if (!this.ownsFd || this.closed) return;
    if (this.inFlight) this.reopenWanted = true;
    else this.reopenNow();
  }

  private reopenNow(): void {
    this.reopenWanted = false;
    const path = (this.opts.target as { path: string }).path;
    try {
      const fd = openSync(path, 'a', 0o644);
      closeSync(this.fd);
      this.fd = fd;
    } catch (err) {
      this.opts.report(`access log: reopening ${path} failed (${(err as NodeJS.ErrnoException).code}); still writing the old file`);
    }
  }

  /** Shutdown: the write in flight completes, then what waits is written, in order; nothing is lost. */
  async end(): Promise<void> {
    if (this.inFlight) await new Promise<void>((r) => (this.settled = r));
    this.close();
  }

  /**
   * What waits is written synchronously and the file closed. end() is the clean way; this is for
   * exits that cannot wait (a second SIGTERM), where a write still in flight may land after it.
   */
  close(): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const { data, lines } = this.pending.take();
    try {
      for (const b of data) writeSync(this.fd, b);
    } catch {
      this.dropped += lines;
    }
    this.closed = true;
    if (this.ownsFd && !this.inFlight) closeSync(this.fd);
  }
}

function total(bufs: Buffer[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

/**
 * The access log's target as the config says, kept across reloads: the same file keeps its sink
 * (reopened, as a reload should pick up a rotated file), another file or format gets a new one and
 * the old one writes what it holds first.
 */
export class AccessLogTarget {
  private droppedBefore = 0;
  private current: AccessSink | null = null;

  constructor(private readonly log: Logger) {}

  /** Lines dropped since start, over every sink this process had. */
  get dropped(): number {
    return this.droppedBefore + (this.current?.dropped ?? 0);
  }

  /** Open what `cfg` names (throws, naming the file, when it cannot be opened) and send lines there. */
  async apply(cfg: AccessLogConfig): Promise<void> {
    const path = cfg.path === null ? null : resolve(cfg.path);
    let next: AccessSink | null = null;
    if (cfg.format !== 'off' && (path !== null || this.log.toStdout)) {
      if (this.current !== null && this.current.path === path && this.current.sameBatching(cfg)) {
        this.current.reopen();
        return;
      }
      try {
        next = new AccessSink({ target: path === null ? { fd: 1 } : { path }, bufferBytes: cfg.bufferBytes, flushMs: cfg.flushMs, report: (m) => this.log.error(m) });
      } catch (err) {
        throw new Error(`access_log: cannot open ${cfg.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
    if (this.current !== null) this.droppedBefore += this.current.dropped;
    this.current = next;
    await this.log.setAccessSink(next);
  }

  /** SIGUSR1: reopen the file by name (logrotate moved it). */
  reopen(): void {
    this.current?.reopen();
  }

  /** Shutdown: everything written, the file closed. */
  async end(): Promise<void> {
    await this.log.setAccessSink(null);
  }
}
