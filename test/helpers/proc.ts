import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flvHeader, flvTags } from '../../src/media/flv/muxer.js';
import type { MediaPacket } from '../../src/media/packet.js';

/**
 * Helpers for the reliability suite: resource counters (handles, sockets, RSS), a gateway in a
 * child process (signals, its own RSS), raw HTTP exchanges, and a synthetic FLV publisher that
 * needs no encoder, so thousands of publish cycles fit in a test.
 */

/** The repository root, seen from dist/test/helpers/. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
/** The node options `npm start` and bin/streamgate.js run the gateway with (README, "Memory on Node 24"). */
const GATEWAY_NODE_ARGS = ['--max-semi-space-size=16'];

// ---- resource counters ---------------------------------------------------------------------------

/** Live libuv resources of this process by kind (TCPSocketWrap, TCPServerWrap, Timeout, …). */
export function handleCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of process.getActiveResourcesInfo()) out[k] = (out[k] ?? 0) + 1;
  return out;
}

/** Open TCP sockets of this process (client and server side alike). */
export function tcpSockets(): number {
  return handleCounts().TCPSocketWrap ?? 0;
}

/** Open file descriptors of a process (Linux /proc). */
export function openFds(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process in bytes (Linux /proc, VmRSS). */
export function rssOf(pid: number | 'self' = 'self'): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export const MiB = 1024 * 1024;

/**
 * What the memory bounds of the tests are multiplied by on this Node. The bounds were measured on
 * Node 20; on Node 24 the same runs grow RSS by more (CONTINUATION flood +61 MiB against +3, a
 * 2 GiB proxy transfer +114 MiB against ~60), with the young generation held to 16 MiB in both:
 * V8's old space grows further between full collections there, and the process starts about
 * 10 MiB larger. Node 24 gets 1.6 times the room and the figures are printed.
 */
export const RSS_BOUND_SCALE = Number(process.versions.node.split('.')[0]) >= 22 ? 1.6 : 1;

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the GC if the test process was started with --expose-gc (memory figures are steadier). */
export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

// ---- children of a test file ---------------------------------------------------------------------

/**
 * Every process a helper spawns, until it exits. The test runner ends a file's process once its
 * tests are done (`--test-force-exit`), whatever handles it still holds; a child is not ended with
 * it, so whatever is still running then gets SIGKILL from the 'exit' handler (signals can be sent
 * from it: they are synchronous). A `before` hook that throws can no longer leave a gateway or an
 * ffmpeg running behind the suite.
 */
const children = new Set<ChildProcess>();

function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

process.once('exit', killChildren);

/** Registers a spawned child so it is killed when this test file's process exits. */
export function track<T extends ChildProcess>(child: T): T {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

// ---- the gateway as a child process --------------------------------------------------------------

const START_BOUND_MS = 60_000;

/**
 * `streamgate -c FILE` in its own process, as an operator runs it: signals, exit codes and its
 * own RSS are real. Its log lines are kept with their arrival time.
 */
export class CliGateway {
  readonly child: ChildProcess;
  readonly lines: { at: number; text: string }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  readonly confFile: string;
  private waiters: (() => void)[] = [];

  /** `nodeArgs`: options for the gateway's node process (before the script). */
  constructor(confText: string, dir = mkdtempSync(join(tmpdir(), 'sg-cli-')), nodeArgs: string[] = []) {
    this.confFile = join(dir, 'streamgate.conf');
    writeFileSync(this.confFile, confText);
    this.child = track(spawn(process.execPath, [...GATEWAY_NODE_ARGS, ...nodeArgs, CLI, '-c', this.confFile], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    for (const s of [this.child.stdout!, this.child.stderr!]) {
      let rest = '';
      s.on('data', (d: Buffer) => {
        const parts = (rest + d.toString()).split('\n');
        rest = parts.pop() ?? '';
        const at = Date.now();
        for (const text of parts) if (text) this.lines.push({ at, text });
        for (const w of this.waiters.splice(0)) w();
      });
    }
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      resolve({ code, signal, at: Date.now() });
      for (const w of this.waiters.splice(0)) w();
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Rewrites the config file (before a SIGHUP). */
  writeConfig(text: string): void {
    writeFileSync(this.confFile, text);
  }

  /** The first log line matching `re` at index `from` or later; rejects after `timeoutMs`. */
  async waitLine(re: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find((l) => re.test(l.text));
      if (hit) return hit.text;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`gateway exited before logging ${re}:\n${this.log()}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}:\n${this.log()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /**
   * Waits for start-up and returns the port of a listener role (`http`, `https`, `rtmp`). The wait
   * is a bound, not a speed check: a cold start took over 10 s on a machine at load average 35.
   */
  async port(role = 'http'): Promise<number> {
    const line = await this.waitLine(new RegExp(`listening on .*:(\\d+) \\(${role}\\)`), START_BOUND_MS);
    return Number(/:(\d+) \(/.exec(line)![1]);
  }

  log(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

// ---- raw HTTP --------------------------------------------------------------------------------------

/** Reads one response from `sock` (Content-Length framed) or what came before its close, then destroys it. */
export function readOneResponse(sock: net.Socket, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(got);
    };
    const timer = setTimeout(finish, ms);
    sock.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(got)?.[1];
      if (end >= 0 && length !== undefined && got.length >= end + 4 + Number(length)) finish();
    });
    sock.on('close', finish);
    sock.on('error', finish);
  });
}

export interface RawReply {
  status: number;
  head: string;
  body: Buffer;
  /** The server closed the connection (FIN or reset) before the timeout. */
  closed: boolean;
  error: string | null;
  ms: number;
}

/**
 * Sends bytes exactly as given and reads until the server closes or `timeoutMs` passes: for
 * requests no well-behaved client library would send (oversized heads, partial heads).
 */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<RawReply> {
  return new Promise((resolve) => {
    const start = performance.now();
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let closed = false;
    const timer = setTimeout(() => finish(), timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = end < 0 ? all.toString('latin1') : all.subarray(0, end).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : 0, head, body: end < 0 ? Buffer.alloc(0) : all.subarray(end + 4), closed, error, ms: performance.now() - start });
    };
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (e) => {
      error = e.message;
    });
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.write(bytes);
  });
}

/** One GET with a fresh connection (no pooling), timed; status 0 when it failed. */
export function timedGet(port: number, path: string, timeoutMs = 10_000): Promise<{ status: number; ms: number; body: string }> {
  return new Promise((resolve) => {
    const start = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start, body: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve({ status: 0, ms: performance.now() - start, body: '' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ms: performance.now() - start, body: '' }));
  });
}

// ---- synthetic FLV -----------------------------------------------------------------------------

const AVC_SEQ_HEADER = Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80]);
const AAC_SEQ_HEADER = Buffer.from([0xaf, 0, 0x12, 0x10]);

function filler(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export interface SyntheticOptions {
  fps?: number;
  /** Frames per GOP. */
  gop?: number;
  keyframeBytes?: number;
  frameBytes?: number;
}

/**
 * A stream with the shape of an H.264 + AAC publish (sequence headers, a key frame every `gop`
 * frames, one AAC frame per video frame) and filler payloads: the hub and the FLV path treat it
 * like the real thing, and no encoder is needed.
 */
export class SyntheticStream {
  readonly fps: number;
  private readonly gop: number;
  private readonly key: Buffer;
  private readonly inter: Buffer;
  private readonly audio = Buffer.concat([Buffer.from([0xaf, 1]), filler(200, 7)]);
  frame = 0;

  constructor(o: SyntheticOptions = {}) {
    this.fps = o.fps ?? 25;
    this.gop = o.gop ?? this.fps;
    this.key = Buffer.concat([Buffer.from([0x17, 1, 0, 0, 0]), filler(o.keyframeBytes ?? 20_000, 3)]);
    this.inter = Buffer.concat([Buffer.from([0x27, 1, 0, 0, 0]), filler(o.frameBytes ?? 3_000, 5)]);
  }

  /** FLV file header and the sequence headers, as a publisher's first bytes. */
  start(): Buffer {
    const pkts: MediaPacket[] = [
      { kind: 'video', dts: 0, cts: 0, keyframe: true, header: true, codec: 7, data: AVC_SEQ_HEADER },
      { kind: 'audio', dts: 0, cts: 0, keyframe: false, header: true, codec: 10, data: AAC_SEQ_HEADER },
    ];
    return Buffer.concat([flvHeader(true, true), flvTags(pkts)]);
  }

  /** The next video frame and its audio frame as FLV tags. */
  next(): Buffer {
    const i = this.frame++;
    const dts = Math.round((i * 1000) / this.fps);
    const keyframe = i % this.gop === 0;
    return flvTags([
      { kind: 'video', dts, cts: 0, keyframe, header: false, codec: 7, data: keyframe ? this.key : this.inter },
      { kind: 'audio', dts, cts: 0, keyframe: false, header: false, codec: 10, data: this.audio },
    ]);
  }
}

/**
 * An HTTP-FLV publisher (POST, chunked, as ffmpeg sends it) driven frame by frame. `response`
 * resolves with the status the gateway answered, or 0 when the connection was cut.
 */
export class FlvPublisher {
  readonly req: http.ClientRequest;
  readonly response: Promise<number>;
  readonly stream: SyntheticStream;
  private timer: NodeJS.Timeout | null = null;

  constructor(port: number, path: string, o: SyntheticOptions = {}) {
    this.stream = new SyntheticStream(o);
    this.req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'Content-Type': 'video/x-flv', 'Transfer-Encoding': 'chunked' } });
    this.response = new Promise((resolve) => {
      this.req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      this.req.on('error', () => resolve(0));
      this.req.on('close', () => resolve(0));
    });
    this.req.write(this.stream.start());
  }

  /** Sends `n` frames at once (as fast as the socket takes them). */
  burst(n: number): void {
    for (let i = 0; i < n && !this.req.destroyed; i++) this.req.write(this.stream.next());
  }

  /** Sends frames in real time until stop() or end(). */
  play(): this {
    this.timer = setInterval(() => this.burst(1), 1000 / this.stream.fps);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Ends the body (a clean unpublish) and waits for the gateway's answer. */
  async end(): Promise<number> {
    this.stop();
    this.req.end();
    return this.response;
  }

  destroy(): void {
    this.stop();
    this.req.destroy();
  }
}
