import http from 'node:http';
import net from 'node:net';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlvPlayerParser, StampedStream, wallMs, type StreamShape } from './flv.js';
import { streamgateArgs } from './peers.js';
import { freePorts, SERVER_CORE, sleep, startProc, treeCpuSeconds, waitPort } from './procs.js';
import type { Row } from './report.js';

/**
 * The `dvr` row: what recording costs. STREAMS synthetic publishers at about 2 Mbps each (HTTP
 * POST of FLV, paced in real time, their video frames stamped with the send time) and one
 * HTTP-FLV player per stream, against streamgate with recording off and then on (FLV, session
 * plan), side by side in one run. Reported: streamgate's CPU with recording on less with it off
 * (percent of one core, over the same window), and the players' publisher → player latency p99
 * on against off. Bounded: STREAMS publishers and players, `seconds` of measurement per pass.
 */

export const DVR_STREAMS = 20;
/** 48 KB key frames every 2 s, 9 KB other frames, 400 B audio at 25 fps: about 255 KB/s, 2.0 Mbps. */
const TWO_MBPS: StreamShape = { fps: 25, gop: 50, keyframeBytes: 48_000, frameBytes: 9_000, audioBytes: 400 };
const PUBLISH_TICK_MS = 5;
/** The issue's bound: recording 20 streams at 2 Mbps costs under this much of a core on top of serving them. */
const TARGET_CPU_PERCENT = 5;

export interface DvrSettings {
  seconds: number;
  /** Seconds after the publishers start before measuring (the first files opened, players joined). */
  settleSeconds: number;
}

interface Pass {
  cpuPercent: number;
  p50: number;
  p99: number;
  frames: number;
  bytesOnDisk: number;
  failures: string[];
}

function percentile(v: number[], p: number): number {
  if (v.length === 0) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function publisher(port: number, path: string, failures: string[]): () => void {
  const stream = new StampedStream(TWO_MBPS);
  const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'Content-Type': 'video/x-flv', 'Transfer-Encoding': 'chunked' } });
  req.on('error', (e) => failures.push(`publish ${path}: ${e.message}`));
  // As encoders that care do (ffmpeg -tcp_nodelay 1): small frames must not wait for delayed ACKs.
  req.on('socket', (s) => s.setNoDelay(true));
  req.on('response', (res) => {
    failures.push(`publish ${path} answered ${res.statusCode}`);
    res.resume();
  });
  req.write(stream.start());
  const t0 = performance.now();
  const frameMs = 1000 / TWO_MBPS.fps;
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - t0) / frameMs) + 1;
    while (stream.frames < due && !req.destroyed) req.write(stream.next(wallMs()));
  }, PUBLISH_TICK_MS);
  return () => {
    clearInterval(timer);
    req.destroy();
  };
}

function player(port: number, path: string, onDelay: (ms: number) => void): () => void {
  const parser = new FlvPlayerParser();
  parser.onStamp = (sentAt) => onDelay(wallMs() - sentAt);
  const sock = net.connect({ host: '127.0.0.1', port }, () => sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
  sock.setNoDelay(true);
  sock.on('data', (b: Buffer) => parser.feed(b, 0, b.length, performance.now()));
  sock.on('error', () => undefined);
  return () => sock.destroy();
}

function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

/** One pass: streamgate with recording on or off, STREAMS publishers and players, CPU and latency over the window. */
async function pass(base: string, record: boolean, s: DvrSettings): Promise<Pass> {
  const dir = join(base, record ? 'dvr-on' : 'dvr-off');
  const rec = join(dir, 'rec');
  mkdirSync(rec, { recursive: true });
  const [port] = await freePorts(1);
  const conf = join(dir, 'streamgate.conf');
  // Players see every frame as it arrives (no merged writes), so any delay recording adds shows.
  writeFileSync(conf, `listen off;
http_server { enabled on; listen 127.0.0.1:${port}; dir ${dir}; https { enabled off; } }
http_api { enabled off; }
access_log off;
vhost __defaultVhost__ { play { mw_latency 0; } dvr { enabled ${record ? 'on' : 'off'}; dvr_plan session; dvr_path ${rec}/[app]/[stream].[timestamp].flv; } }
`);
  const sg = startProc(record ? 'streamgate-dvr-on' : 'streamgate-dvr-off', SERVER_CORE, process.execPath, streamgateArgs(conf), { cwd: dir });
  const failures: string[] = [];
  const stops: (() => void)[] = [];
  const delays: number[] = [];
  let measuring = false;
  try {
    await waitPort(port, sg);
    for (let i = 0; i < DVR_STREAMS; i++) stops.push(publisher(port, `/live/s${i}.flv`, failures));
    await sleep(1000);
    for (let i = 0; i < DVR_STREAMS; i++) stops.push(player(port, `/live/s${i}.flv`, (ms) => measuring && delays.push(ms)));
    await sleep(s.settleSeconds * 1000);
    measuring = true;
    const cpu0 = treeCpuSeconds(sg.pid);
    const t0 = performance.now();
    await sleep(s.seconds * 1000);
    const cpu = treeCpuSeconds(sg.pid) - cpu0;
    const wall = (performance.now() - t0) / 1000;
    measuring = false;
    return { cpuPercent: (cpu / wall) * 100, p50: percentile(delays, 50), p99: percentile(delays, 99), frames: delays.length, bytesOnDisk: bytesUnder(rec), failures: [...failures] };
    // (Publishers cut off below fail by design: the copy above leaves their errors out.)
  } finally {
    for (const stop of stops) stop();
    await sg.stop();
    rmSync(rec, { recursive: true, force: true });
  }
}

export async function runDvr(base: string, s: DvrSettings, log: (m: string) => void): Promise<Row> {
  const row: Row = {
    id: 'dvr', workload: `recording ${DVR_STREAMS} streams at 2 Mbps (FLV, session plan), one HTTP-FLV player each`, unit: '% of a core added',
    method: `streamgate with dvr off, then on, ${s.seconds} s each after ${s.settleSeconds} s; CPU of the process tree; publisher → player latency of every video frame`,
    streamgate: null, peers: {}, ratios: {}, target: `< ${TARGET_CPU_PERCENT}% of a core, no latency added`, met: null,
  };
  try {
    const off = await pass(base, false, s);
    const on = await pass(base, true, s);
    const added = on.cpuPercent - off.cpuPercent;
    row.streamgate = Number(added.toFixed(1));
    const extra = on.p99 - off.p99;
    row.cpu = `off ${off.cpuPercent.toFixed(1)}%, on ${on.cpuPercent.toFixed(1)}% of a core; ${(on.bytesOnDisk / 1e6).toFixed(1)} MB recorded`;
    row.note = `latency p99 off ${off.p99.toFixed(1)} ms, on ${on.p99.toFixed(1)} ms (p50 ${off.p50.toFixed(1)} / ${on.p50.toFixed(1)} ms; ${off.frames}/${on.frames} frames)${[...off.failures, ...on.failures].length ? `; failures: ${[...off.failures, ...on.failures].slice(0, 3).join('; ')}` : ''}`;
    // "No latency added": within a few ms of the pass without recording (both are scheduling noise on a shared machine).
    row.met = on.frames > 0 && off.frames > 0 && added < TARGET_CPU_PERCENT && extra <= 5 && on.failures.length === 0 && off.failures.length === 0;
    log(`dvr: ${row.cpu}; ${row.note}`);
    return row;
  } catch (e) {
    return { ...row, note: `not run: ${(e as Error).message.split('\n')[0]}` };
  }
}
