import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { streamgateArgs } from './lib/peers.js';
import { freePorts, LOAD_CORE, type Proc, rssBytes, SERVER_CORE, sleep, startProc, treeCpuSeconds, waitPort } from './lib/procs.js';
import type { Row } from './lib/report.js';

/**
 * The `ll-hls` row: N LL-HLS clients on one stream, each in a loop of blocking playlist reloads
 * (`_HLS_msn`/`_HLS_part` of the next part, as hls.js asks), against streamgate cutting 0.333 s
 * parts from a live ffmpeg publish (1 s GOP). Reported: server CPU per answered reload and per
 * client, server memory per held request (RSS with every client held, against before they came),
 * and whether any reload failed. Bounded: N clients, `seconds` of load, one request each at a time.
 */

const PART_S = 0.333;
const HINT = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*-(\d+)\.(\d+)\.m4s/;

export interface LlHlsSettings {
  clients: number;
  seconds: number;
}

function get(agent: http.Agent, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body: '' }));
    });
    req.setTimeout(10_000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

/** One client: reload, read the hint, block on it, until the deadline. */
async function client(agent: http.Agent, port: number, deadline: number, tally: { ok: number; failed: number; first?: string }): Promise<void> {
  let query = '';
  while (Date.now() < deadline) {
    const r = await get(agent, port, `/live/ll.m3u8${query}`);
    const m = r.status === 200 ? HINT.exec(r.body) : null;
    if (!m) {
      if (tally.failed++ === 0) tally.first = `${r.status} ${r.body.slice(0, 200)}`;
      await sleep(PART_S * 1000);
      query = '';
      continue;
    }
    tally.ok++;
    query = `?_HLS_msn=${m[1]}&_HLS_part=${m[2]}`;
  }
}

export async function runLlHls(base: string, s: LlHlsSettings, log: (m: string) => void): Promise<Row> {
  const row: Row = { id: 'll-hls', workload: `${s.clients.toLocaleString('en')} LL-HLS clients, blocking reloads (hls_part 0.333, 1 s GOP)`, unit: 'CPU ms per reload', method: `${s.seconds} s of load after every client's first answer`, streamgate: null, peers: {}, ratios: {}, target: 'no failed reload (memory per held request reported)', met: null };
  const dir = join(base, 'll-hls');
  mkdirSync(dir, { recursive: true });
  const [port] = await freePorts(1);
  const conf = join(dir, 'streamgate.conf');
  writeFileSync(conf, `listen off;
max_connections 20000;
http_server { enabled on; listen 127.0.0.1:${port}; dir ${dir}; https { enabled off; } }
http_api { enabled off; }
access_log off;
limits { max_streams 0; max_players 0; hls_held_requests ${Math.max(8192, s.clients * 2)}; }
vhost __defaultVhost__ { play { mw_latency 0; } hls { enabled on; hls_fragment 1; hls_window 6; hls_ll on; hls_part ${PART_S}; } }
`);
  const sg = startProc('streamgate-ll', SERVER_CORE, process.execPath, streamgateArgs(conf), { cwd: dir });
  const agent = new http.Agent({ keepAlive: true, maxSockets: s.clients + 10 });
  let pub: Proc | null = null;
  try {
    await waitPort(port, sg);
    pub = startProc('ffmpeg-ll', LOAD_CORE, 'ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=480x270:rate=25', '-t', String(s.seconds + 30),
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '25', '-pix_fmt', 'yuv420p', '-f', 'flv', `http://127.0.0.1:${port}/live/ll.flv`]);
    for (let t = Date.now(); Date.now() < t + 20_000; await sleep(250)) if (HINT.test((await get(agent, port, '/live/ll.m3u8')).body)) break;
    const rss0 = rssBytes(sg.pid);
    const warm: { ok: number; failed: number; first?: string } = { ok: 0, failed: 0 };
    const tally: { ok: number; failed: number; first?: string } = { ok: 0, failed: 0 };
    const deadline = Date.now() + (s.seconds + 3) * 1000;
    // Connections opened first (a reload each), so the window measures held reloads, not handshakes.
    const loops = Array.from({ length: s.clients }, () => client(agent, port, Date.now() + 1500, warm));
    await Promise.all(loops);
    const cpu0 = treeCpuSeconds(sg.pid);
    const t0 = Date.now();
    const running = Array.from({ length: s.clients }, () => client(agent, port, deadline, tally));
    // Sampled mid-part, when every client is held waiting for the next one.
    let rssHeld = 0;
    for (let i = 0; i < 10; i++, await sleep(PART_S * 300)) rssHeld = Math.max(rssHeld, rssBytes(sg.pid));
    await Promise.all(running);
    const cpu = treeCpuSeconds(sg.pid) - cpu0;
    const wall = (Date.now() - t0) / 1000;
    const perReload = tally.ok > 0 ? (cpu * 1000) / tally.ok : null;
    const perHeld = Math.max(0, rssHeld - rss0) / s.clients;
    row.streamgate = perReload === null ? null : Number(perReload.toFixed(3));
    row.cpu = `${((cpu / wall) * 100).toFixed(0)}% of a core for ${s.clients} clients (${((cpu / wall / s.clients) * 100 * 1000).toFixed(1)} m% each); ${(tally.ok / wall).toFixed(0)} reloads/s; RSS +${(perHeld / 1024).toFixed(1)} KiB per held request`;
    row.note = tally.failed > 0 ? `${tally.failed} reloads failed, the first: ${tally.first}` : undefined;
    row.met = tally.failed === 0;
    log(`ll-hls: ${tally.ok} reloads, ${tally.failed} failed, ${row.cpu}`);
    return row;
  } catch (e) {
    return { ...row, note: `not run: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    agent.destroy();
    await pub?.stop();
    await sg.stop();
  }
}
