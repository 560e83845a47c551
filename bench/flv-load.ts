import http from 'node:http';
import net from 'node:net';
import { FlvPlayerParser, StampedStream, wallMs } from './lib/flv.js';

/**
 * The HTTP-FLV player-load generator: one process (run by bench/run.ts on the load core, driven
 * over IPC) holding thousands of players on raw sockets, optionally with the synthetic publisher.
 *
 * A player keeps up when it is connected and its last timestamp is within KEEP_UP_MS of the live
 * edge. The live edge is found from the player itself: the publisher sends in real time, so while
 * a player is served at once its (dts − arrival time) is a constant; the largest value of it the
 * player has seen is its edge, and its lag is how far it is below that now. Each player's own,
 * because a server that gives every player a timeline from 0 (SRS's time_jitter, streamgate's
 * default) stamps the same frame differently for players that joined at different times. This
 * needs no clock shared with the publisher, so it holds for ffmpeg → node-media-server as well.
 *
 * All players share one read buffer (`onread`): no allocation per read, so the generator's own
 * CPU goes to the kernel copies, and it reports that CPU so a saturated generator shows.
 */

const KEEP_UP_MS = 2000;
/** A player that saw no 200 head within this is counted as failed. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A join that shows no key frame within this counts as failed; all joins together get the budget. */
const TTFF_TIMEOUT_MS = 5000;
const TTFF_BUDGET_MS = 30_000;
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
/** How often the publisher's timer checks for frames due (a frame is 40 ms at 25 fps). */
const PUBLISH_TICK_MS = 5;

class Player {
  readonly parser = new FlvPlayerParser();
  readonly socket: net.Socket;
  readonly startedAt = performance.now();
  closed = false;
  error: string | null = null;
  /** Largest (dts − arrival) this player has seen: its live edge, see above. */
  edge = -Infinity;

  constructor(target: Target, onData: (p: Player, now: number) => void) {
    this.socket = net.connect({
      host: target.host,
      port: target.port,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Buffer) => {
          const now = performance.now();
          this.parser.feed(buf, 0, n, now);
          if (this.parser.failed !== null) {
            this.error = this.parser.failed;
            this.socket.destroy();
            return false;
          }
          onData(this, now);
          return true;
        },
      },
    });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.socket.write(`GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUser-Agent: streamgate-flv-load\r\nAccept: */*\r\n\r\n`);
    });
    this.socket.on('error', (e) => {
      this.error ??= e.message;
    });
    this.socket.on('close', () => {
      this.closed = true;
    });
  }

  get playing(): boolean {
    return !this.closed && this.parser.status === 200;
  }
}

interface Target {
  host: string;
  port: number;
  path: string;
}

type Msg =
  | { id: number; cmd: 'start'; target: Target; publish: Target | null }
  | { id: number; cmd: 'players'; n: number; perSec: number }
  | { id: number; cmd: 'sample'; ms: number }
  | { id: number; cmd: 'ttff'; joins: number; concurrency: number }
  | { id: number; cmd: 'latency'; ms: number; probes: number }
  | { id: number; cmd: 'stop' };

let target: Target = { host: '127.0.0.1', port: 0, path: '/' };
const players: Player[] = [];
let publisher: Publisher | null = null;

function onData(p: Player, now: number): void {
  if (p.parser.lastDts >= 0) {
    const off = p.parser.lastDts - now;
    if (off > p.edge) p.edge = off;
  }
}

/** A player's distance behind its live edge, ms. */
function lagOf(p: Player, now: number): number {
  return p.parser.lastDts < 0 ? Infinity : now + p.edge - p.parser.lastDts;
}

class Publisher {
  private readonly stream = new StampedStream();
  private readonly req: http.ClientRequest;
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  error: string | null = null;

  constructor(t: Target) {
    this.req = http.request({ host: t.host, port: t.port, path: t.path, method: 'POST', agent: false, headers: { 'Content-Type': 'video/x-flv', 'Transfer-Encoding': 'chunked' } });
    this.req.on('error', (e) => (this.error = e.message));
    // Without TCP_NODELAY each small frame waits for the ACK of the one before, and the gateway,
    // which answers nothing while a publish lasts, delays its ACKs (40 ms on Linux): that is the
    // sender's Nagle, not the hub, and encoders that care turn it off (ffmpeg -tcp_nodelay 1).
    this.req.on('socket', (sock) => sock.setNoDelay(true));
    this.req.on('response', (res) => {
      // ffmpeg never reads the answer; an answer before the end means the publish was refused.
      this.error = `publish answered ${res.statusCode}`;
      res.resume();
    });
    this.req.write(this.stream.start());
    const frameMs = 1000 / this.stream.shape.fps;
    // Frames go out on the publisher's schedule, not the timer's: late ticks send what is due.
    this.timer = setInterval(() => {
      const due = Math.floor((performance.now() - this.t0) / frameMs) + 1;
      while (this.stream.frames < due && !this.req.destroyed) this.req.write(this.stream.next(wallMs()));
    }, PUBLISH_TICK_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.req.destroy();
  }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Opens or closes players until `n` are open, at most `perSec` new ones a second. */
async function setPlayers(n: number, perSec: number): Promise<object> {
  for (let i = players.length - 1; i >= 0 && players.length > n; i--) {
    players[i].socket.destroy();
    players.splice(i, 1);
  }
  const stepMs = 20;
  const perStep = Math.max(1, Math.round((perSec * stepMs) / 1000));
  while (players.length < n) {
    for (let k = 0; k < perStep && players.length < n; k++) players.push(new Player(target, onData));
    await sleep(stepMs);
  }
  // Wait for every new player's answer (or its failure) before the caller measures.
  const until = performance.now() + CONNECT_TIMEOUT_MS;
  while (performance.now() < until && players.some((p) => !p.closed && p.parser.status === 0)) await sleep(50);
  return counts();
}

function counts(): { open: number; playing: number; failed: number; errors: string[] } {
  const errors = new Map<string, number>();
  let playing = 0;
  let failed = 0;
  for (const p of players) {
    if (p.playing) playing++;
    else {
      failed++;
      const e = p.error ?? (p.closed ? 'closed by server' : 'no answer');
      errors.set(e, (errors.get(e) ?? 0) + 1);
    }
  }
  return { open: players.filter((p) => !p.closed).length, playing, failed, errors: [...errors].map(([e, c]) => `${c}× ${e}`).slice(0, 5) };
}

/** Samples keeping-up counts every half second over `ms`: their median and minimum. */
async function sample(ms: number): Promise<object> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const kept: number[] = [];
  let lags: number[] = [];
  while (performance.now() - t0 < ms) {
    await sleep(500);
    const now = performance.now();
    lags = players.map((p) => (p.playing ? lagOf(p, now) : Infinity));
    kept.push(lags.filter((l) => l <= KEEP_UP_MS).length);
  }
  const used = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  const finite = lags.filter(Number.isFinite);
  return {
    ...counts(),
    keptUpMin: Math.min(...kept),
    keptUpMedian: percentile(kept, 50),
    lagP50: percentile(finite, 50),
    lagP99: percentile(finite, 99),
    genCpu: ((used.user + used.system) / 1000 / wall) * 100,
    publisherError: publisher?.error ?? null,
  };
}

/** Players joining one after another (`concurrency` at a time): connect → first key frame, ms. */
async function ttff(joins: number, concurrency: number): Promise<object> {
  const times: number[] = [];
  let failed = 0;
  let next = 0;
  const deadline = performance.now() + TTFF_BUDGET_MS;
  const one = async (): Promise<void> => {
    while (next < joins && performance.now() < deadline) {
      next++;
      const p = new Player(target, onData);
      const until = Math.min(deadline, p.startedAt + TTFF_TIMEOUT_MS);
      while (p.parser.firstKeyAt === 0 && !p.closed && performance.now() < until) await sleep(1);
      if (p.parser.firstKeyAt > 0) times.push(p.parser.firstKeyAt - p.startedAt);
      else failed++;
      p.socket.destroy();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  return { joins: next, failed, p50: percentile(times, 50), p99: percentile(times, 99), max: Math.max(...times) };
}

/** Publisher → player delay of every stamped frame on `probes` extra players over `ms`. */
async function latency(ms: number, probes: number): Promise<object> {
  // Stamps are wall-clock times (performance.timeOrigin + now), so the publisher may run in
  // another generator process on this machine.
  const delays: number[] = [];
  let live = false;
  const ps: Player[] = [];
  for (let i = 0; i < probes; i++) {
    const p = new Player(target, onData);
    // The join burst replays the cached GOP: only frames after it measure the live path.
    p.parser.onStamp = (sentAt) => {
      if (live) delays.push(wallMs() - sentAt);
    };
    ps.push(p);
  }
  await sleep(3000);
  live = true;
  await sleep(ms);
  for (const p of ps) p.socket.destroy();
  return { frames: delays.length, p50: percentile(delays, 50), p99: percentile(delays, 99), max: Math.max(...delays) };
}

async function handle(m: Msg): Promise<object> {
  switch (m.cmd) {
    case 'start':
      target = m.target;
      if (m.publish) publisher = new Publisher(m.publish);
      return { ok: true };
    case 'players':
      return setPlayers(m.n, m.perSec);
    case 'sample':
      return sample(m.ms);
    case 'ttff':
      return ttff(m.joins, m.concurrency);
    case 'latency':
      return latency(m.ms, m.probes);
    case 'stop':
      publisher?.stop();
      for (const p of players) p.socket.destroy();
      setTimeout(() => process.exit(0), 100);
      return { ok: true };
  }
}

process.on('message', (m: Msg) => {
  handle(m).then(
    (r) => process.send!({ id: m.id, ...r }),
    (e: Error) => process.send!({ id: m.id, error: e.message }),
  );
});
// The orchestrator going away (crash, SIGKILL) must not leave thousands of sockets behind.
process.on('disconnect', () => process.exit(0));
