import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { h2load, wrk, type LoadResult } from './lib/load.js';
import {
  API_PATH,
  PLAYLIST_PATH,
  REPO_ROOT,
  SEGMENT_PATH,
  prepareSite,
  startCaddy,
  startNginx,
  startNms,
  startSeedKoa,
  startNodeFloor,
  startStreamgate,
  startUpstream,
  type Peer,
  type Site,
} from './lib/peers.js';
import { cpuPercentDuring, firstLine, killAllNow, rssBytes, sleep, startProc, treeCpuSeconds, treePids, stopAll, which, LOAD_CORE, type Proc } from './lib/procs.js';
import { openCpuCap, type CpuCap } from './lib/cpucap.js';
import { topFrames, type Frame } from './lib/profile.js';
import { renderMarkdown, type FanoutStep, type Report, type Row } from './lib/report.js';
import { REQUIRED_TOOLS } from './lib/tools.js';
import { Generator } from './lib/generator.js';
import { FRONT_FLV_PATH, originPlayers, startNginxFront, startOrigin, startSrsFront } from './lib/front.js';
import { runLlHls } from './ll-hls.js';
import { runDvr } from './lib/dvr.js';

/** LL-HLS clients doing blocking reloads in the ll-hls row. */
const LL_HLS_CLIENTS = 1000;

/**
 * `npm run bench` — streamgate side by side with NGINX, Caddy, the seed's Koa front door and
 * node-media-server, in one run on one machine, reported as ratios. Server under test on core 0,
 * load (and the proxy upstream, and publishers) on core 1.
 *
 *   --smoke         tiny counts: proves every peer starts and every workload runs (< 60 s)
 *   --only=a,b      run only these workloads (m3u8, ts, ts-capped, api, https-h1, https-h2, fanout, nms, hls, ll-hls, dvr, front,
 *                   logs: the HTTP rows again with every server's access log on)
 *   --out=DIR       where latest.md/latest.json go (default bench/results; smoke: a temp dir)
 *   --no-profile    skip the --cpu-prof pass for targets not met
 *   --steps=1000,…  fan-out steps for streamgate; --nms-steps=… for node-media-server
 *   --reps=N        repetitions of each HTTP run
 */

/** streamgate's merged-write window in the fan-out runs (SRS's default). */
const MW_LATENCY_MS = 350;
/** Load time of a profiling run of one HTTP workload. */
const PROFILE_SECONDS = 8;

interface Settings {
  smoke: boolean;
  reps: number;
  seconds: number;
  conns: number;
  warmupSeconds: number;
  steps: number[];
  nmsSteps: number[];
  settleMs: number;
  windowMs: number;
  rampPerSec: number;
  ttffJoins: number;
  latencyMs: number;
  profile: boolean;
}

function settings(argv: string[]): Settings & { only: Set<string> | null; out: string } {
  const arg = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const smoke = argv.includes('--smoke');
  const only = arg('only') ? new Set(arg('only')!.split(',')) : null;
  const base: Settings = smoke
    ? { smoke, reps: 1, seconds: 1, conns: 10, warmupSeconds: 0, steps: [50], nmsSteps: [20], settleMs: 500, windowMs: 1000, rampPerSec: 500, ttffJoins: 10, latencyMs: 1500, profile: false }
    : { smoke, reps: 5, seconds: 3, conns: 50, warmupSeconds: 1, steps: [1000, 3000, 6000, 9000, 12000], nmsSteps: [1000, 1500], settleMs: 3000, windowMs: 5000, rampPerSec: 1000, ttffJoins: 200, latencyMs: 8000, profile: !argv.includes('--no-profile') };
  const reps = arg('reps');
  if (reps) base.reps = Number(reps);
  if (arg('steps')) base.steps = arg('steps')!.split(',').map(Number);
  if (arg('nms-steps')) base.nmsSteps = arg('nms-steps')!.split(',').map(Number);
  const out = arg('out') ?? (smoke ? mkdtempSync(join(tmpdir(), 'sg-bench-out-')) : join(REPO_ROOT, 'bench/results'));
  return { ...base, only, out };
}

// ---- HTTP workloads -------------------------------------------------------------------------------

interface HttpWorkload {
  id: string;
  title: string;
  peers: string[];
  /** Minimum ratio streamgate ÷ peer, per peer named in the target. */
  targets: Record<string, number>;
  /** Every server, streamgate included, held to CAPPED_SHARE of a core while it is measured. */
  capped?: boolean;
  run(peer: Peer, s: Settings): Promise<LoadResult>;
}

/**
 * The share of a core a capped workload allows each server: low enough that wrk (which needs
 * about as much CPU per 512 KB answer as the server) has room to spare on its own core.
 */
const CAPPED_SHARE = 0.5;

const HTTP_WORKLOADS: HttpWorkload[] = [
  {
    id: 'm3u8',
    title: '1 KB .m3u8 from disk, HTTP/1.1 keep-alive (wrk)',
    peers: ['nginx', 'caddy', 'seed-koa'],
    targets: { nginx: 0.8, 'seed-koa': 3 },
    run: (p, s) => wrk({ url: `http://127.0.0.1:${p.http}${PLAYLIST_PATH}`, conns: s.conns, seconds: s.seconds }),
  },
  {
    id: 'ts',
    title: '512 KB .ts from disk, HTTP/1.1 keep-alive (wrk)',
    peers: ['nginx', 'caddy', 'seed-koa'],
    targets: { nginx: 1.0 },
    run: (p, s) => wrk({ url: `http://127.0.0.1:${p.http}${SEGMENT_PATH}`, conns: s.conns, seconds: s.seconds }),
  },
  {
    // The row above is bound by wrk on its core (it copies every byte the servers hand over
    // by sendfile); here the servers run out first. See lib/cpucap.ts.
    id: 'ts-capped',
    title: `512 KB .ts from disk, every server held to ${CAPPED_SHARE * 100}% of a core (wrk)`,
    peers: ['nginx', 'caddy'],
    targets: { nginx: 1.0 },
    capped: true,
    run: (p, s) => wrk({ url: `http://127.0.0.1:${p.http}${SEGMENT_PATH}`, conns: s.conns, seconds: s.seconds }),
  },
  {
    id: 'api',
    title: '/api/ proxied to a small upstream (wrk)',
    // node-floor: bytes relayed verbatim by Node, no HTTP at all (peers/node-floor.ts), the
    // least any proxy on this runtime can cost; no target, it is there to be read against.
    peers: ['nginx', 'nginx-keepalive', 'caddy', 'seed-koa', 'node-floor'],
    targets: { caddy: 1.0, nginx: 1.0, 'seed-koa': 3 },
    run: (p, s) => wrk({ url: `http://127.0.0.1:${p.http}${API_PATH}`, conns: s.conns, seconds: s.seconds }),
  },
  {
    id: 'https-h1',
    title: 'HTTPS 1 KB file, HTTP/1.1 (h2load --h1)',
    peers: ['nginx'],
    targets: { nginx: 0.8 },
    run: (p, s) => h2load({ url: `https://127.0.0.1:${p.https}${PLAYLIST_PATH}`, conns: s.conns, seconds: s.seconds, proto: 'h1', warmupSeconds: s.warmupSeconds }),
  },
  {
    id: 'https-h2',
    title: 'HTTPS 1 KB file, HTTP/2, 10 streams/conn (h2load)',
    peers: ['nginx'],
    targets: { nginx: 0.8 },
    run: (p, s) => h2load({ url: `https://127.0.0.1:${p.https}${PLAYLIST_PATH}`, conns: s.conns, seconds: s.seconds, proto: 'h2', warmupSeconds: s.warmupSeconds }),
  },
];

/**
 * The HTTP rows again (the capped one too) with every server's access log on, to a file: NGINX buffered
 * (`buffer=64k flush=1s`, what a careful operator sets), Caddy's `log` directive, streamgate's
 * default batching. The seed Koa app and the Node floor have no access log, so they are left out.
 */
const LOG_OFF = 'streamgate-log-off';
/** Peers with no access log to turn on: the seed's Koa app and Node's floor. */
const UNLOGGED = new Set(['seed-koa', 'node-floor']);
/** The servers that run on Node, which warm up (JIT, lazy modules) before they are measured. */
const NODE_SERVERS = new Set(['streamgate', LOG_OFF, ...UNLOGGED]);

function withLogs(w: HttpWorkload): HttpWorkload {
  // streamgate with its log off runs in the same rounds: the log's cost is then a per-round ratio of
  // two runs seconds apart, not of two passes minutes apart on a machine whose speed drifts. It is
  // the same process with its log switched off by a reload, not a second one: two streamgates
  // started alike differed by up to 40% on the HTTP/2 row (measured: 97k against 140k req/s, log
  // off in both, for as long as both ran), which would read as the log's cost.
  const peers = [...w.peers.filter((p) => !UNLOGGED.has(p)), LOG_OFF];
  const targets = Object.fromEntries(Object.entries(w.targets).filter(([p]) => !UNLOGGED.has(p)));
  return { ...w, id: `${w.id}-logs`, title: `${w.title}, access logs on`, peers, targets };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
}

async function startHttpPeers(base: string, site: Site, upstream: number, names: Set<string>, logs = false): Promise<Map<string, Peer>> {
  const peers = new Map<string, Peer>();
  const sg = await startStreamgate(base, site, upstream, { logs });
  peers.set('streamgate', sg);
  if (names.has('nginx')) peers.set('nginx', await startNginx(base, site, upstream, false, undefined, logs));
  if (names.has('nginx-keepalive')) peers.set('nginx-keepalive', await startNginx(base, site, upstream, true, undefined, logs));
  if (names.has('caddy')) peers.set('caddy', await startCaddy(base, site, upstream, logs));
  if (names.has('seed-koa')) peers.set('seed-koa', await startSeedKoa(site, upstream));
  if (names.has('node-floor')) peers.set('node-floor', await startNodeFloor(upstream));
  if (names.has(LOG_OFF)) {
    sg.before = () => sg.setLog(true);
    peers.set(LOG_OFF, { ...sg, name: LOG_OFF, before: () => sg.setLog(false) });
  }
  return peers;
}

/**
 * Every (workload, server) pair runs `reps` times; the repetitions are interleaved (round r of
 * every pair before round r+1, servers in a rotating order) so drift on a shared machine falls on
 * all servers alike. The figure is the median of the repetitions.
 */
/** One server's runs of one workload; the CPU figures are per run, as shares of a core. */
interface HttpCell {
  rps: number;
  runs: number[];
  error: string | null;
  serverCpu: number[];
  loadCpu: number[];
  /** What TLS the server chose, when the load tool says. */
  tls?: string;
}

async function runHttp(s: Settings, workloads: HttpWorkload[], peers: Map<string, Peer>, log: (m: string) => void, cap: CpuCap | null = null): Promise<Map<string, Map<string, HttpCell>>> {
  const results = new Map<string, Map<string, HttpCell>>();
  for (const w of workloads) results.set(w.id, new Map());
  if (s.warmupSeconds > 0) {
    // Only the Node servers need it (JIT, lazy modules); NGINX and Caddy serve at full speed from the start.
    log(`warm-up: ${s.warmupSeconds}s per Node server and workload`);
    for (const w of workloads) {
      for (const name of ['streamgate', ...w.peers].filter((n) => NODE_SERVERS.has(n))) {
        const peer = peers.get(name)!;
        await peer.before?.();
        await w.run(peer, { ...s, seconds: s.warmupSeconds });
      }
    }
  }
  for (let r = 0; r < s.reps; r++) {
    for (const w of workloads) {
      const names = ['streamgate', ...w.peers];
      const order = names.map((_, i) => names[(i + r) % names.length]);
      for (const name of order) {
        const peer = peers.get(name)!;
        await peer.before?.();
        const release = w.capped && cap ? cap.hold(treePids(peer.proc.pid)) : null;
        const c0 = treeCpuSeconds(peer.proc.pid);
        const t0 = performance.now();
        const res = await w.run(peer, s).finally(() => release?.());
        const serverCpu = (treeCpuSeconds(peer.proc.pid) - c0) / ((performance.now() - t0) / 1000);
        const cell = results.get(w.id)!.get(name) ?? { rps: 0, runs: [], error: null, serverCpu: [], loadCpu: [] };
        cell.serverCpu[r] = res.error ? NaN : serverCpu;
        cell.loadCpu[r] = res.error || res.loadCpu == null ? NaN : res.loadCpu;
        cell.tls ??= res.tls;
        // Runs stay indexed by round (NaN for a failed one) so ratios can be taken round by round.
        if (res.error) cell.error = res.error;
        cell.runs[r] = res.error ? NaN : res.rps;
        cell.rps = median(cell.runs.filter(Number.isFinite));
        results.get(w.id)!.set(name, cell);
        log(`${w.id} ${name} run ${r + 1}: ${res.error ?? `${Math.round(res.rps)} req/s`}`);
      }
    }
  }
  return results;
}

function httpRows(workloads: HttpWorkload[], results: Map<string, Map<string, HttpCell>>, s: Settings, cap: CpuCap | null = null): Row[] {
  return workloads.map((w) => {
    const cells = results.get(w.id)!;
    const sg = cells.get('streamgate')!;
    const peerFigures: Record<string, number | null> = {};
    const ratios: Record<string, number | null> = {};
    for (const p of w.peers) {
      const c = cells.get(p)!;
      peerFigures[p] = Number.isFinite(c.rps) ? c.rps : null;
      // Other engineers' jobs share the machine and swing whole rounds by 3×: a ratio of two runs
      // a few seconds apart is steadier than the ratio of two medians, so the median of those.
      const perRound = sg.runs.map((x, r) => x / c.runs[r]).filter(Number.isFinite);
      ratios[p] = perRound.length ? median(perRound) : null;
    }
    const met = Object.entries(w.targets).every(([p, min]) => (ratios[p] ?? 0) >= min);
    const errors = [...cells].filter(([, c]) => c.error).map(([n, c]) => `${n}: ${c.error}`);
    // Server CPU per answered request, and how busy the load core was: with the load tool near
    // 100% the req/s figures measure the client as much as the server, and CPU per request is
    // the fairer comparison.
    const usPerReq = (c: HttpCell) => median(c.serverCpu.map((cpu, r) => (cpu * 1e6) / c.runs[r]).filter(Number.isFinite));
    const pct = (c: HttpCell) => Math.round(median(c.loadCpu.filter(Number.isFinite)) * 100);
    let cpuNote = `server CPU per request ${['streamgate', ...w.peers].map((n) => `${n} ${Math.round(usPerReq(cells.get(n)!))} µs`).join(', ')}; load core busy ${['streamgate', ...w.peers].map((n) => `${pct(cells.get(n)!)}%`).join('/')}`;
    // Records cost differently per protocol version: a comparison is fair only on the same one.
    if (sg.tls) cpuNote += `; TLS ${['streamgate', ...w.peers].map((n) => `${n} ${cells.get(n)!.tls ?? '?'}`).join(', ')}`;
    return {
      id: w.id,
      workload: w.title,
      unit: 'req/s',
      method: `${s.conns} conns, ${s.reps} interleaved rounds of ${s.seconds} s: figures are medians, ratio the median of per-round ratios${w.capped && cap ? `; each server held to ${cap.describe}` : ''}`,
      streamgate: Number.isFinite(sg.rps) ? sg.rps : null,
      peers: peerFigures,
      ratios,
      target: targetText(w),
      met,
      note: errors.join('; ') || undefined,
      cpu: cpuNote,
    };
  });
}

// ---- HTTP-FLV fan-out --------------------------------------------------------------------------------

type Step = FanoutStep;

interface SampleReply {
  playing: number;
  keptUpMin: number;
  keptUpMedian: number;
  lagP99: number;
  genCpu: number;
  errors: string[];
  publisherError: string | null;
}

async function fanoutSteps(gen: Generator, server: Proc, steps: number[], perSec: number, s: Settings, log: (m: string) => void, atFirst?: (first: Step) => Promise<void>): Promise<{ steps: Step[]; rss0: number }> {
  await sleep(Math.max(2000, s.settleMs));
  const rss0 = rssBytes(server.pid);
  const out: Step[] = [];
  for (const n of steps) {
    await gen.call({ cmd: 'players', n, perSec });
    await sleep(s.settleMs);
    let { cpu, value } = await cpuPercentDuring(server.pid, () => gen.call<SampleReply>({ cmd: 'sample', ms: s.windowMs }));
    if (value.keptUpMedian < n) {
      // Best of two windows: a stall of the whole shared machine (other jobs) puts every player
      // behind at once, which one more window tells apart from a server that cannot keep up.
      const again = await cpuPercentDuring(server.pid, () => gen.call<SampleReply>({ cmd: 'sample', ms: s.windowMs }));
      if (again.value.keptUpMedian > value.keptUpMedian) ({ cpu, value } = again);
    }
    const rss = rssBytes(server.pid);
    const step: Step = {
      players: n,
      playing: value.playing,
      keptUp: value.keptUpMedian,
      keptUpMin: value.keptUpMin,
      serverCpu: cpu,
      rssMB: rss / 1024 / 1024,
      kbPerPlayer: (rss - rss0) / n / 1024,
      genCpu: value.genCpu,
      lagP99: value.lagP99,
      errors: value.publisherError ? [value.publisherError, ...value.errors] : value.errors,
    };
    out.push(step);
    log(`${server.name} ${n} players: ${step.keptUp} kept up, server ${step.serverCpu.toFixed(0)}% CPU, ${step.rssMB.toFixed(0)} MB, generator ${step.genCpu.toFixed(0)}%${step.errors.length ? ` (${step.errors.join(', ')})` : ''}`);
    if (out.length === 1 && atFirst) await atFirst(step);
    // A server already far behind only gets slower with more players; the next steps would measure nothing.
    if (step.keptUp < n / 2) break;
  }
  return { steps: out, rss0 };
}

interface FanoutResult {
  steps: Step[];
  ttff: { p50: number; p99: number; failed: number; joins: number } | null;
  latency: { p50: number; p99: number; frames: number } | null;
}

async function runStreamgateFanout(base: string, site: Site, upstream: number, s: Settings, log: (m: string) => void, nodeArgs: string[] = [], joins = true): Promise<FanoutResult & { peer: Peer }> {
  const sg = await startStreamgate(join(base, 'fanout'), site, upstream, { mwLatencyMs: MW_LATENCY_MS, nodeArgs });
  const gen = new Generator();
  const target = { host: '127.0.0.1', port: sg.http, path: '/live/bench.flv' };
  await gen.call({ cmd: 'start', target, publish: target });
  let ttff: FanoutResult['ttff'] = null;
  let latency: FanoutResult['latency'] = null;
  const { steps } = await fanoutSteps(gen, sg.proc, s.steps, s.rampPerSec, s, log, !joins ? undefined : async () => {
    ttff = await gen.call({ cmd: 'ttff', joins: s.ttffJoins, concurrency: 4 });
    log(`time to first frame: ${JSON.stringify(ttff)}`);
    // The probes get a process of their own: in the generator that also reads the 1,000 players,
    // a probe's bytes wait behind theirs after every flush, and that wait is the generator's.
    const probe = new Generator();
    await probe.call({ cmd: 'start', target });
    const l = await probe.call<{ p50: number; p99: number; frames: number }>({ cmd: 'latency', ms: s.latencyMs, probes: 20 });
    await probe.stop();
    // Batching delays a packet by up to the window by design; only what comes on top is the hub's.
    latency = { p50: l.p50, p99: l.p99 - MW_LATENCY_MS, frames: l.frames };
    log(`latency beyond mw_latency: ${JSON.stringify(latency)}`);
  });
  await gen.stop();
  return { steps, ttff, latency, peer: sg };
}

let encoded: Promise<string> | null = null;

/**
 * A real H.264/AAC FLV file at ~0.5 Mbps with a key frame every 2 s, encoded once per run on the
 * load core, for the publishers that must be real (RTMP into node-media-server, HLS segmenting).
 * Long enough for a whole phase: looping it (-stream_loop) restarts its timestamps, which
 * node-media-server answers by dropping every player.
 */
function mediaFile(base: string, s: Settings): Promise<string> {
  encoded ??= (async () => {
    const dir = join(base, 'media');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'bench.flv');
    const seconds = s.smoke ? 20 : 150;
    const enc = startProc('ffmpeg-encode', LOAD_CORE, 'ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=480x270:rate=25`, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
      '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '440k', '-maxrate', '450k', '-bufsize', '900k', '-g', '50', '-keyint_min', '50', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-b:a', '48k', '-f', 'flv', '-y', file,
    ]);
    await new Promise((r) => enc.child.once('exit', r));
    if (!existsSync(file)) throw new Error(`ffmpeg could not make the test file: ${enc.tail()}`);
    await enc.stop();
    return file;
  })();
  return encoded;
}

async function runNmsFanout(base: string, s: Settings, log: (m: string) => void): Promise<{ steps: Step[]; error: string | null; ttff: FanoutResult['ttff'] }> {
  const file = await mediaFile(base, s);
  const nms = await startNms(base);
  const pub = startProc('ffmpeg-publish', LOAD_CORE, 'ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-i', file, '-c', 'copy', '-f', 'flv', `rtmp://127.0.0.1:${nms.rtmp}/live/bench`]);
  const gen = new Generator();
  await gen.call({ cmd: 'start', target: { host: '127.0.0.1', port: nms.http, path: '/live/bench.flv' }, publish: null });
  let ttff: FanoutResult['ttff'] = null;
  // node-media-server takes new players far more slowly than streamgate (about 50 a second
  // with 500 watching): a gentle ramp, so the figure is about keeping up, not about joining.
  const { steps } = await fanoutSteps(gen, nms.proc, s.nmsSteps, Math.min(100, s.rampPerSec), s, log, async (first) => {
    // Joins behind a saturated accept queue would each wait out the timeout and measure nothing.
    if (first.keptUp < first.players) return;
    ttff = await gen.call({ cmd: 'ttff', joins: Math.min(50, s.ttffJoins), concurrency: 4 });
    log(`node-media-server time to first frame: ${JSON.stringify(ttff)}`);
  });
  await gen.stop();
  const pubGone = pub.child.exitCode !== null ? `the ffmpeg publisher exited early: ${pub.tail().split('\n').slice(-2).join(' / ')}` : null;
  await pub.stop();
  await nms.proc.stop();
  const error = steps.length && steps[0].playing === 0 ? `no player got a 200 FLV answer: ${steps[0].errors.join(', ')}; ${nms.proc.tail().split('\n').slice(-3).join(' / ')}` : pubGone;
  return { steps, error, ttff };
}

function best(steps: Step[]): Step | null {
  return steps.reduce<Step | null>((b, x) => (!b || x.keptUp > b.keptUp ? x : b), null);
}

// ---- the SRS-front layout -----------------------------------------------------------------------

/** Files of the origin's disk through each front: streamgate (srs-front.conf) and NGINX (the seed's nginx.proxy.conf). */
const FRONT_WORKLOADS: HttpWorkload[] = [
  {
    id: 'front-m3u8',
    title: "1 KB .m3u8 from an origin's disk through the front: srs-front.conf vs NGINX's seed nginx.proxy.conf (wrk)",
    peers: ['nginx-front'],
    targets: { 'nginx-front': 1.0 },
    run: (p, s) => wrk({ url: `http://127.0.0.1:${p.http}${PLAYLIST_PATH}`, conns: s.conns, seconds: s.seconds }),
  },
  {
    id: 'front-ts',
    title: "512 KB .ts from an origin's disk through the front: srs-front.conf vs NGINX's seed nginx.proxy.conf (wrk)",
    peers: ['nginx-front'],
    targets: { 'nginx-front': 1.0 },
    run: (p, s) => wrk({ url: `http://127.0.0.1:${p.http}${SEGMENT_PATH}`, conns: s.conns, seconds: s.seconds }),
  },
];

/** One origin (a streamgate standing in for SRS, on the load core), each front in turn in front of it. */
async function runFront(base: string, site: Site, s: Settings, log: (m: string) => void): Promise<Row[]> {
  const origin = await startOrigin(base, site);
  const sg = await startSrsFront(base, site, origin.http);
  const ng = await startNginxFront(base, site, origin.http);
  try {
    const results = await runHttp(s, FRONT_WORKLOADS, new Map([['streamgate', sg], ['nginx-front', ng]]), log);
    const rows = httpRows(FRONT_WORKLOADS, results, s);
    for (const r of rows) r.method += '; origin: a streamgate serving the files from disk, on the load core';
    rows.push(await frontFanout(origin, [sg, ng], s, log));
    return rows;
  } finally {
    for (const p of [ng, sg, origin]) await p.proc.stop();
  }
}

/**
 * HTTP-FLV players through each front, the synthetic publisher on the origin: streamgate's edge
 * makes one upstream request per stream, NGINX's stream location one per player (the origin's
 * API counts them). The server's CPU is the front's (NGINX: its worker).
 */
async function frontFanout(origin: Peer, fronts: Peer[], s: Settings, log: (m: string) => void): Promise<Row> {
  const steps = s.smoke ? [20] : [500, 1000, 2000];
  const got: Record<string, { best: Step | null; upstream: number; at: number }> = {};
  for (const peer of fronts) {
    const gen = new Generator();
    await gen.call({ cmd: 'start', target: { host: '127.0.0.1', port: peer.http, path: FRONT_FLV_PATH }, publish: { host: '127.0.0.1', port: origin.http, path: FRONT_FLV_PATH } });
    const pids = treePids(peer.proc.pid);
    const proc = { ...peer.proc, pid: pids[pids.length - 1] };
    let upstream = -1;
    const r = await fanoutSteps(gen, proc, steps, s.rampPerSec, s, log, async () => {
      upstream = await originPlayers(origin, 'bench');
    });
    await gen.stop();
    got[peer.name] = { best: best(r.steps), upstream, at: steps[0] };
    // The front's edge connection closes idle_timeout (3 s) after the last player: let it go before the next front.
    await sleep(s.smoke ? 1000 : 4000);
  }
  const sgr = got[fronts[0].name];
  const ngr = got[fronts[1].name];
  const cpu = (x: { best: Step | null }) => (x.best ? `${x.best.serverCpu.toFixed(0)}% CPU at ${x.best.players}` : 'no step');
  return {
    id: 'flv-front',
    workload: 'HTTP-FLV fan-out through the front (one 0.5 Mbps stream on the origin): players kept up',
    unit: 'players',
    method: `steps ${steps.join('/')}, kept-up count as in the fan-out row; upstream requests read from the origin's API at ${steps[0]} players`,
    streamgate: sgr.best?.keptUp ?? null,
    peers: { 'nginx-front': ngr.best?.keptUp ?? null },
    ratios: { 'nginx-front': sgr.best && ngr.best?.keptUp ? sgr.best.keptUp / ngr.best.keptUp : null },
    target: '≥ 1.0× nginx-front',
    met: sgr.best !== null && ngr.best !== null && sgr.best.keptUp >= ngr.best.keptUp,
    note: `upstream requests to the origin at ${sgr.at} players: streamgate ${sgr.upstream}, NGINX ${ngr.upstream}; front CPU: streamgate ${cpu(sgr)}, NGINX ${cpu(ngr)}`,
  };
}

// ---- profiling -------------------------------------------------------------------------------------

async function profileHttp(base: string, site: Site, upstream: number, w: HttpWorkload, s: Settings): Promise<Frame[]> {
  const dir = join(base, `prof-${w.id}`);
  mkdirSync(dir, { recursive: true });
  const sg = await startStreamgate(join(base, `prof-sg-${w.id}`), site, upstream, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  // Long enough that start-up (module loading) is a small part of the profile.
  await w.run(sg, { ...s, seconds: PROFILE_SECONDS });
  await stopForProfile(sg.proc);
  return topFrames(dir, REPO_ROOT);
}

/** SIGTERM and wait: the profile is written as the process exits, which a SIGKILL would prevent. */
async function stopForProfile(p: Proc): Promise<void> {
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  await p.stop();
}

// ---- main -------------------------------------------------------------------------------------------

/** The 1-minute load average: how busy the shared machine was around the run. */
function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
}

function machine(): Report['machine'] {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  const pkg = (p: string) => (JSON.parse(readFileSync(join(REPO_ROOT, p), 'utf8')) as { version: string }).version;
  return {
    cpu: cpuModel,
    cores: cpus().length,
    kernel: release(),
    versions: {
      streamgate: pkg('package.json'),
      node: process.version,
      nginx: firstLine('nginx', ['-v']).replace(/^nginx version: /, ''),
      caddy: firstLine('caddy', ['version']).split(' ')[0],
      wrk: firstLine('wrk', ['-v']).split(' [')[0],
      h2load: firstLine('h2load', ['--version']),
      ffmpeg: firstLine('ffmpeg', ['-version']).split(' Copyright')[0],
      'node-media-server': pkg('node_modules/node-media-server/package.json'),
      koa: pkg('node_modules/koa/package.json'),
      'koa-proxies': pkg('node_modules/koa-proxies/package.json'),
      'koa-static': pkg('node_modules/koa-static/package.json'),
    },
  };
}

async function main(): Promise<void> {
  const s = settings(process.argv.slice(2));
  const missing = REQUIRED_TOOLS.filter((t) => !which(t));
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')}`);
  const started = Date.now();
  const loadBefore = loadAverage();
  const log = (m: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${m}`);
  const want = (id: string) => !s.only || s.only.has(id);
  const base = mkdtempSync(join(tmpdir(), 'sg-bench-'));
  const rows: Row[] = [];
  const notes: string[] = [];
  const profiles: Record<string, Frame[]> = {};
  const fanout: Report['fanout'] = {};
  try {
    const site = prepareSite(base);
    const upstream = await startUpstream(base);
    const wanted = HTTP_WORKLOADS.filter((w) => want(w.id));
    // Logs on: the rows asked for (all, or `--only=logs` for every one), the capped row among them.
    const asked = want('logs') ? HTTP_WORKLOADS.filter((w) => want(w.id) || s.only?.has('logs')) : [];
    const cap = [...wanted, ...asked].some((w) => w.capped) ? openCpuCap(CAPPED_SHARE) : null;
    const held = typeof cap === 'string' ? null : cap;
    capOpen = held;
    // Without a quota the capped rows would measure the load tool again: they say why they did not run.
    const workloads = typeof cap === 'string' ? wanted.filter((w) => !w.capped) : wanted;
    if (workloads.length) {
      const names = new Set(workloads.flatMap((w) => w.peers));
      const peers = await startHttpPeers(base, site, upstream.http, names);
      log(`peers up: ${[...peers.keys()].join(', ')}${held ? `; capped rows hold each server to ${held.describe}` : ''}`);
      // The quota stays open for the logs pass, which runs the capped row again.
      const results = await runHttp(s, workloads, peers, log, held);
      for (const p of peers.values()) await p.proc.stop();
      const measured = httpRows(workloads, results, s, held);
      rows.push(...wanted.map((w) => measured.find((r) => r.id === w.id) ?? notRun(w, `not run: ${cap as string}`)));
      if (s.profile) {
        for (const w of workloads.filter((w) => !w.capped && !rows.find((r) => r.id === w.id)!.met)) {
          log(`profiling streamgate on ${w.id}`);
          profiles[w.id] = await profileHttp(base, site, upstream.http, w, s);
        }
      }
    }

    // The capped row runs with logs on too: the uncapped 512 KB row measures wrk either way.
    const logged = asked.filter((w) => !w.capped || held !== null).map(withLogs);
    if (logged.length) {
      const peers = await startHttpPeers(base, site, upstream.http, new Set(logged.flatMap((w) => w.peers)), true);
      log(`peers up with access logs on: ${[...peers.keys()].join(', ')}`);
      const results = await runHttp(s, logged, peers, log, held);
      for (const p of peers.values()) await p.proc.stop();
      // A row "with logs on" whose server wrote no log would compare nothing: say so on the rows.
      const silent = [...peers.keys()].filter((n) => n !== LOG_OFF).filter((n) => {
        const f = join(base, `${n}-logs`, 'access.log');
        return !existsSync(f) || readFileSync(f).length === 0;
      });
      const measured = httpRows(logged, results, s, held);
      const rowsOn = asked.map(withLogs).map((w) => measured.find((r) => r.id === w.id) ?? notRun(w, `not run: ${String(cap)}`));
      for (const row of rowsOn) {
        if (row.met === null) {
          rows.push(row);
          continue;
        }
        if (silent.length) row.note = [row.note, `no access log written by ${silent.join(', ')}`].filter(Boolean).join('; ');
        // What the log costs streamgate: its rate with the log on ÷ off, round by round in this pass.
        const onOff = row.ratios[LOG_OFF];
        if (onOff != null) row.note = [row.note, `streamgate with its log on: ${(onOff * 100).toFixed(0)}% of its rate with the log off, median of per-round ratios (target ≥ 95%)`].filter(Boolean).join('; ');
        rows.push(row);
      }
    }
    closeCap();

    let sgFan: (FanoutResult & { peer: Peer }) | null = null;
    let nmsFan: Awaited<ReturnType<typeof runNmsFanout>> | null = null;
    if (want('fanout')) {
      log('HTTP-FLV fan-out: streamgate');
      sgFan = await runStreamgateFanout(base, site, upstream.http, s, log);
      await sgFan.peer.proc.stop();
      fanout.streamgate = sgFan.steps;
    }
    if (want('nms') || want('fanout')) {
      log('HTTP-FLV fan-out: node-media-server');
      nmsFan = await runNmsFanout(base, s, log).catch((e: Error) => ({ steps: [], error: e.message, ttff: null }));
      fanout['node-media-server'] = nmsFan.steps;
      if (nmsFan.error) notes.push(`node-media-server: ${nmsFan.error}`);
    }
    if (sgFan) {
      rows.push(...fanoutRows(sgFan, nmsFan, s));
      // A CPU profile explains players or memory; join time and latency on a shared machine are
      // mostly scheduling, which a profile of the server does not show.
      const unmet = rows.filter((r) => (r.id === 'flv-fanout' || r.id === 'flv-memory') && r.met === false);
      if (s.profile && unmet.length) {
        log('profiling streamgate fan-out');
        const dir = join(base, 'prof-fanout');
        mkdirSync(dir, { recursive: true });
        const top = s.steps[Math.max(0, s.steps.length - 2)];
        const again = await runStreamgateFanout(join(base, 'prof'), site, upstream.http, { ...s, steps: [top] }, log, ['--cpu-prof', `--cpu-prof-dir=${dir}`], false);
        await stopForProfile(again.peer.proc);
        profiles[`fanout at ${top} players`] = topFrames(dir, REPO_ROOT);
      }
    }
    if (want('front')) {
      log('SRS-front layout: srs-front.conf and NGINX (seed nginx.proxy.conf) in front of one origin');
      rows.push(...(await runFront(base, site, s, log)));
    }
    if (want('hls')) {
      log('live HLS');
      const row = await runHls(base, site, upstream.http, s, log).catch((e: Error) => hlsNotRun(`not run: ${e.message.split('\n')[0]}`));
      rows.push(row);
      if (s.profile && row.met === false) {
        log('profiling streamgate on hls');
        profiles.hls = await profileHls(base, site, upstream.http, s);
      }
    }
    if (want('ll-hls')) {
      log('LL-HLS blocking reloads');
      rows.push(await runLlHls(base, { clients: s.smoke ? 50 : LL_HLS_CLIENTS, seconds: s.smoke ? 2 : 10 }, log));
    }
    if (want('dvr')) {
      log('dvr: recording on against off');
      rows.push(await runDvr(base, { seconds: s.smoke ? 2 : 10, settleSeconds: s.smoke ? 1 : 3 }, log));
    }
    await upstream.proc.stop();
  } finally {
    await stopAll();
    closeCap();
    rmSync(base, { recursive: true, force: true });
  }
  const report: Report = {
    date: new Date().toISOString(),
    mode: s.smoke ? 'smoke' : 'full',
    durationS: Math.round((Date.now() - started) / 1000),
    machine: machine(),
    load: `load average ${loadBefore} at the start, ${loadAverage()} at the end (other jobs share this machine)`,
    pinning: 'server under test on core 0 (taskset -c 0); wrk/h2load, the FLV player generator, publishers (synthetic POST, ffmpeg) and the proxy upstream (NGINX returning JSON from memory) on core 1',
    rows,
    fanout,
    profiles,
    notes,
  };
  mkdirSync(s.out, { recursive: true });
  writeFileSync(join(s.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(s.out, 'latest.md'), renderMarkdown(report));
  log(`wrote ${join(s.out, 'latest.md')}`);
}

function fanoutRows(sg: FanoutResult, nms: { steps: Step[]; error: string | null; ttff: FanoutResult['ttff'] } | null, s: Settings): Row[] {
  const sgBest = best(sg.steps);
  const nmsBest = nms && !nms.error ? best(nms.steps.filter((x) => x.keptUp > 0)) : null;
  const maxStep = s.steps[s.steps.length - 1];
  const goal = s.smoke ? maxStep : 9000;
  const sgMem = sgBest ? sgBest.kbPerPlayer : null;
  const nmsMem = nmsBest ? nmsBest.kbPerPlayer : null;
  const nmsNote = nms?.error ? `node-media-server not run: ${nms.error}` : undefined;
  const ttff = sg.ttff as FanoutResult['ttff'];
  const lat = sg.latency as FanoutResult['latency'];
  return [
    {
      id: 'flv-fanout',
      workload: 'HTTP-FLV fan-out, one 0.5 Mbps stream: players kept up (≤ 2 s behind)',
      unit: 'players',
      method: `steps ${s.steps.join('/')} (nms ${s.nmsSteps.join('/')}), kept-up count sampled every 0.5 s over a ${s.windowMs / 1000} s window: the median, best of 2 windows`,
      streamgate: sgBest?.keptUp ?? null,
      peers: { 'node-media-server': nms && !nms.error && nms.steps.length ? (nmsBest?.keptUp ?? 0) : null },
      ratios: { 'node-media-server': sgBest && nmsBest?.keptUp ? sgBest.keptUp / nmsBest.keptUp : null },
      target: `≥ ${goal.toLocaleString('en-US')} players (SRS 7.0: 9,000 at 93% CPU)`,
      met: (sgBest?.keptUp ?? 0) >= goal,
      note: [sgBest ? `streamgate at ${sgBest.players}: ${sgBest.serverCpu.toFixed(0)}% CPU, ${sgBest.rssMB.toFixed(0)} MB` : '', nmsNote].filter(Boolean).join('; ') || undefined,
    },
    {
      id: 'flv-memory',
      workload: 'memory per HTTP-FLV player, (RSS at N − RSS at 0) / N',
      unit: 'KB',
      method: 'at the step with most players kept up',
      streamgate: sgMem,
      peers: { 'node-media-server': nmsMem },
      ratios: { 'node-media-server': sgMem !== null && nmsMem ? sgMem / nmsMem : null },
      target: '≤ 30 KB (SRS 7.0: ~95 KB)',
      met: sgMem !== null && sgMem <= 30,
    },
    {
      id: 'flv-ttff',
      workload: 'time to first frame for a joining player (connect → first key frame), p99 (p50)',
      unit: 'ms',
      method: `${ttff?.joins ?? 0} joins, 4 at a time, while ${s.steps[0]} players watch`,
      streamgate: ttff?.p99 ?? null,
      peers: { 'node-media-server': nms?.ttff?.p99 ?? null },
      ratios: { 'node-media-server': ttff && nms?.ttff ? ttff.p99 / nms.ttff.p99 : null },
      target: '≤ 100 ms at p99',
      met: ttff !== null && ttff.failed === 0 && ttff.p99 <= 100,
      note: ttff ? `p50 ${ttff.p50.toFixed(1)} ms, ${ttff.failed} failed${nms?.ttff ? `; node-media-server p50 ${nms.ttff.p50.toFixed(1)} ms` : ''}` : undefined,
    },
    {
      id: 'flv-latency',
      workload: `publisher → player added latency beyond mw_latency (${MW_LATENCY_MS} ms), p99`,
      unit: 'ms',
      method: `${lat?.frames ?? 0} stamped frames on 20 probe players (a process of their own) over ${s.latencyMs / 1000} s, with ${s.steps[0]} players`,
      streamgate: lat?.p99 ?? null,
      peers: {},
      ratios: {},
      target: '≤ 50 ms at p99',
      met: lat !== null && lat.frames > 0 && lat.p99 <= 50,
      note: lat ? `send → receive p50 ${lat.p50.toFixed(1)} ms, p99 ${(lat.p99 + MW_LATENCY_MS).toFixed(1)} ms` : undefined,
    },
  ];
}

/** Viewers of the live HLS workload: each asks for the playlist and the newest segments in turn. */
const HLS_CLIENTS = 1000;
const HLS_PATH = '/live/bench.m3u8';
const HLS_ABSENT_AFTER_MS = 7000;
/** Segments each client asks for in turn with the playlist: the newest, as players at the live edge. */
const HLS_SEGMENTS = 3;

/** The newest `n` segment paths of the playlist the server itself serves now. */
async function liveSegments(port: number, n: number): Promise<string[]> {
  const base = `http://127.0.0.1:${port}${HLS_PATH}`;
  const res = await fetch(base);
  const text = res.ok ? await res.text() : '';
  return text
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((u) => new URL(u.trim(), base).pathname)
    .slice(-n);
}

const HLS_WORKLOAD: HttpWorkload = {
  id: 'hls',
  title: `live HLS: playlist + ${HLS_SEGMENTS} newest segments in turn, ${HLS_CLIENTS.toLocaleString('en-US')} clients (h2load --h1)`,
  peers: ['nginx'],
  targets: { nginx: 0.8 },
  // Segments slide out of a live playlist: each run asks the server for its current ones.
  run: async (p, s) => {
    const segs = await liveSegments(p.http, HLS_SEGMENTS);
    const url = (path: string) => `http://127.0.0.1:${p.http}${path}`;
    return h2load({ url: url(HLS_PATH), moreUrls: segs.map(url), conns: s.smoke ? 20 : HLS_CLIENTS, seconds: s.seconds, proto: 'h1', warmupSeconds: s.smoke ? 0 : 1 });
  },
};

/**
 * streamgate segmenting a live publish (ffmpeg, the real H.264 file, over HTTP-FLV) against NGINX
 * serving a copy of the same playlist and segments from disk. Not run, with the reason, when
 * this build has no HLS output.
 */
interface HlsSession {
  sg: Peer;
  pub: Proc;
  /** The newest segments once enough are live; fewer (with the last status) when HLS is absent. */
  segs: string[];
  status: number;
  stop(): Promise<void>;
}

/** streamgate with ffmpeg publishing the real H.264 file to it, waited on until its playlist lists segments. */
async function hlsSession(base: string, site: Site, upstream: number, s: Settings, dirName: string, nodeArgs: string[] = []): Promise<HlsSession> {
  const file = await mediaFile(base, s);
  const sg = await startStreamgate(join(base, dirName), site, upstream, { nodeArgs });
  const pub = startProc('ffmpeg-hls-publish', LOAD_CORE, 'ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-i', file, '-c', 'copy', '-f', 'flv', `http://127.0.0.1:${sg.http}/live/bench.flv`]);
  let segs: string[] = [];
  let status = 0;
  const t0 = Date.now();
  const want = s.smoke ? 1 : HLS_SEGMENTS;
  for (; Date.now() < t0 + 20_000 && segs.length < want; await sleep(500)) {
    status = (await fetch(`http://127.0.0.1:${sg.http}${HLS_PATH}`).catch(() => null))?.status ?? 0;
    if (status === 200) segs = await liveSegments(sg.http, HLS_SEGMENTS);
    // With HLS the playlist exists once the first 2 s segment is cut; still 404 well after: no HLS.
    else if (status === 404 && Date.now() - t0 > HLS_ABSENT_AFTER_MS) break;
  }
  return { sg, pub, segs: segs.length >= want ? segs : [], status, stop: async () => {
    await pub.stop();
    await sg.proc.stop();
  } };
}

/**
 * streamgate segmenting a live publish (ffmpeg, the real H.264 file, over HTTP-FLV) against NGINX
 * serving a copy of the same playlist and segments from disk. Not run, with the reason, when
 * this build has no HLS output.
 */
async function runHls(base: string, site: Site, upstream: number, s: Settings, log: (m: string) => void): Promise<Row> {
  const live = await hlsSession(base, site, upstream, s, 'hls');
  const { sg, segs, status } = live;
  try {
    if (segs.length === 0) {
      return hlsNotRun(status === 404 ? 'not run: HLS not landed (GET of the live playlist is 404 while publishing)' : `not run: the live playlist listed too few segments after 20 s (status ${status})`);
    }
    const root = join(base, 'hls-www');
    mkdirSync(join(root, 'live'), { recursive: true });
    const playlist = await (await fetch(`http://127.0.0.1:${sg.http}${HLS_PATH}`)).text();
    writeFileSync(join(root, HLS_PATH), playlist);
    for (const path of await liveSegments(sg.http, 100)) {
      const seg = await fetch(`http://127.0.0.1:${sg.http}${path}`);
      if (seg.ok) writeFileSync(join(root, path), Buffer.from(await seg.arrayBuffer()));
    }
    const nginx = await startNginx(base, { ...site, root }, upstream, false, 'nginx-hls');
    log(`HLS: ${segs.length}+ segments live; NGINX serves a copy from disk`);
    // No separate warm-up pass: h2load's own warm-up second precedes each measured run, and a
    // 1 s run opening 1,000 connections spends most of it connecting.
    const results = await runHttp({ ...s, reps: Math.min(s.reps, 3), warmupSeconds: 0 }, [HLS_WORKLOAD], new Map([['streamgate', sg], ['nginx', nginx]]), log);
    await nginx.proc.stop();
    return httpRows([HLS_WORKLOAD], results, { ...s, conns: s.smoke ? 20 : HLS_CLIENTS, reps: Math.min(s.reps, 3) })[0];
  } finally {
    await live.stop();
  }
}

/** A fresh streamgate under --cpu-prof serving the HLS workload once. */
async function profileHls(base: string, site: Site, upstream: number, s: Settings): Promise<Frame[]> {
  const dir = join(base, 'prof-hls');
  mkdirSync(dir, { recursive: true });
  const live = await hlsSession(base, site, upstream, s, 'prof-sg-hls', ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  try {
    if (live.segs.length) await HLS_WORKLOAD.run(live.sg, { ...s, seconds: PROFILE_SECONDS });
    await live.pub.stop();
    await stopForProfile(live.sg.proc);
  } finally {
    await live.stop();
  }
  return topFrames(dir, REPO_ROOT);
}

function hlsNotRun(reason: string): Row {
  return { ...notRun(HLS_WORKLOAD, reason), target: '≥ 0.8× nginx from disk' };
}

function notRun(w: HttpWorkload, reason: string): Row {
  return { id: w.id, workload: w.title, unit: 'req/s', method: '', streamgate: null, peers: {}, ratios: {}, target: targetText(w), met: null, note: reason };
}

function targetText(w: HttpWorkload): string {
  return Object.entries(w.targets)
    .map(([p, min]) => `≥ ${min}× ${p}`)
    .join(', ');
}

/** The CPU-capped group until the HTTP rows end: removed then, or once an error or SIGINT has stopped the servers in it. */
let capOpen: CpuCap | null = null;

function closeCap(): void {
  const cap = capOpen;
  capOpen = null;
  cap?.close();
}

process.on('SIGINT', () => {
  void stopAll().finally(() => {
    try {
      closeCap();
    } catch {
      // a server that outlived its SIGKILL still in the group: nothing more to do on the way out
    }
    process.exit(130);
  });
});
process.on('exit', killAllNow);

main().catch(async (e: Error) => {
  console.error(e.stack ?? e.message);
  await stopAll();
  process.exit(1);
});
