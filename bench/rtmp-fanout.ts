import net from 'node:net';
import { FlvDemuxer } from '../src/media/flv/demuxer.js';
import { CliGateway, sleep, SyntheticStream } from '../test/helpers/proc.js';
import { RtmpTestClient } from '../test/helpers/rtmp-client.js';
import { cpuSeconds } from './lib/procs.js';

/**
 * Gateway CPU to fan one ~1 Mbit/s stream out to N players, RTMP against HTTP-FLV, both fed by
 * one RTMP publisher. Players discard what they receive. Usage (after `npm run build`):
 *   node dist/bench/rtmp-fanout.js [players=200] [seconds=10]
 */

const PLAYERS = Number(process.argv[2] ?? 200);
const SECONDS = Number(process.argv[3] ?? 10);

async function rtmpPlayer(port: number): Promise<net.Socket> {
  const c = new RtmpTestClient(port);
  await c.play('live', 'b');
  await c.until('Play.Start', () => c.statuses.includes('NetStream.Play.Start'), 20_000);
  c.socket.removeAllListeners('data');
  c.socket.on('data', () => undefined);
  return c.socket;
}

function flvPlayer(port: number): net.Socket {
  const s = net.connect(port, '127.0.0.1');
  s.write('GET /live/b.flv HTTP/1.1\r\nHost: x\r\n\r\n');
  s.on('data', () => undefined).on('error', () => undefined);
  return s;
}

async function main(): Promise<void> {
  const gw = new CliGateway(`listen 127.0.0.1:0; max_connections 5000;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }`);
  const rtmp = await gw.port('rtmp');
  const http = await gw.port('http');
  const pub = new RtmpTestClient(rtmp);
  await pub.publish('live', 'b');
  const syn = new SyntheticStream({ fps: 25, gop: 50, keyframeBytes: 30_000, frameBytes: 4_000 });
  const flv = new FlvDemuxer();
  const send = (b: Buffer) => {
    for (const p of flv.push(b)) pub.media(p.kind === 'audio' ? 8 : 9, p.dts, p.data);
  };
  send(syn.start());
  const timer = setInterval(() => send(syn.next()), 40);
  const measure = async (label: string, open: () => Promise<net.Socket[]>) => {
    const socks = await open();
    await sleep(1000);
    const c0 = cpuSeconds(gw.pid);
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const cpu = cpuSeconds(gw.pid) - c0;
    const wall = (Date.now() - t0) / 1000;
    console.log(`${label}: ${socks.length} players, gateway CPU ${((cpu / wall) * 100).toFixed(1)} % of a core`);
    for (const s of socks) s.destroy();
    await sleep(500);
  };
  try {
    await measure('idle (publisher only)', async () => []);
    await measure('RTMP play', async () => {
      const out: net.Socket[] = [];
      for (let i = 0; i < PLAYERS; i++) out.push(await rtmpPlayer(rtmp));
      return out;
    });
    await measure('HTTP-FLV play', async () => Array.from({ length: PLAYERS }, () => flvPlayer(http)));
  } finally {
    clearInterval(timer);
    pub.close();
    gw.signal('SIGTERM');
    await gw.exited;
  }
}

await main();
