import type { Writable } from 'node:stream';
import { ClfClock, type CombinedPieces, combinedLine } from './http/access-combined.js';
import type { AccessSink } from './http/access-sink.js';

/** Access-log lines are buffered and written at most this often: a write per request would cost a syscall each. */
const FLUSH_INTERVAL_MS = 100;
const FLUSH_BYTES = 64 * 1024;

/**
 * The process log: one line per event on stderr-like output, access lines buffered. A Gateway
 * owns one, so tests can capture what an operator would read.
 */
export class Logger {
  private buffer: string[] = [];
  private bufferedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Where access lines go when set (a file, or stdout written without blocking); else `out`. */
  private sink: AccessSink | null = null;
  /** The CLF time of combined lines, made once a second. */
  private readonly clf = new ClfClock();

  constructor(
    private readonly out: Pick<Writable, 'write'> = process.stdout,
    private readonly err: Pick<Writable, 'write'> = process.stderr,
  ) {}

  info(msg: string): void {
    this.flush();
    this.out.write(`${stamp()} [info] ${msg}\n`);
  }

  warn(msg: string): void {
    this.flush();
    this.err.write(`${stamp()} [warn] ${msg}\n`);
  }

  error(msg: string): void {
    this.flush();
    this.err.write(`${stamp()} [error] ${msg}\n`);
  }

  /** Whether this logger writes to the process's stdout (which an access sink may then take over). */
  get toStdout(): boolean {
    return this.out === process.stdout;
  }

  get accessSink(): AccessSink | null {
    return this.sink;
  }

  /** Send access lines to `sink` from now on; the previous sink writes what it holds and closes. */
  async setAccessSink(sink: AccessSink | null): Promise<void> {
    const old = this.sink;
    this.flush();
    this.sink = sink;
    if (old !== null && old !== sink) await old.end();
  }

  access(line: string): void {
    if (this.sink !== null) {
      this.sink.write(line);
      return;
    }
    this.buffer.push(line);
    this.bufferedBytes += line.length + 1;
    if (this.bufferedBytes >= FLUSH_BYTES) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /**
   * A combined line from pieces made once per request head (src/http/access-combined.ts): into
   * the sink's batch as bytes, with no string made.
   */
  accessCombined(p: CombinedPieces, status: number, bytes: number, ms: number, at = Date.now()): void {
    const time = this.clf.at(at);
    if (this.sink !== null) this.sink.writeCombined(p, time, status, bytes, ms);
    else this.access(combinedLine(p, time, status, bytes, ms));
  }

  flush(): void {
    this.sink?.flush();
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.buffer.length === 0) return;
    const text = `${this.buffer.join('\n')}\n`;
    this.buffer = [];
    this.bufferedBytes = 0;
    this.out.write(text);
  }
}

function stamp(): string {
  return new Date().toISOString();
}

/** A logger that keeps lines in memory (tests) while still formatting them like the real one. */
export function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = {
    write(chunk: string | Uint8Array): boolean {
      for (const l of String(chunk).split('\n')) if (l) lines.push(l);
      return true;
    },
  };
  return { log: new Logger(sink, sink), lines };
}
