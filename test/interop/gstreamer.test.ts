import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { run, waitFor, type Proc } from '../helpers/ffmpeg.js';

/**
 * GStreamer as a publisher and as a player (Debian's gstreamer1.0-tools with -plugins-good,
 * -plugins-bad, -plugins-ugly for x264enc and -libav for AAC and H.264 decoding). Its flvmux sends
 * onMetaData again every few seconds, with the running time as its timestamp: players must still
 * see one video and one audio stream, on a timeline that starts at 0.
 */

const V = '__defaultVhost__';

/** videotestsrc + audiotestsrc → x264 + AAC → flvmux → rtmp2sink, live. */
function gstPublish(url: string): Proc {
  return run('gst-launch-1.0', [
    '-q',
    'videotestsrc', 'is-live=true', '!', 'video/x-raw,width=320,height=240,framerate=25/1', '!',
    'x264enc', 'tune=zerolatency', 'speed-preset=ultrafast', 'key-int-max=25', '!', 'h264parse', '!',
    'flvmux', 'name=mux', 'streamable=true', '!', 'rtmp2sink', `location=${url}`,
    'audiotestsrc', 'is-live=true', '!', 'audio/x-raw,rate=44100,channels=2', '!', 'avenc_aac', '!', 'aacparse', '!', 'mux.',
  ]);
}

/**
 * Plays `source` (a gst-launch source description ending in a demuxer that yields H.264) and
 * counts the video frames decoded, up to `frames` or `timeoutMs`. fakesink prints a line per
 * buffer with -v; counting them needs no end of stream, which a live source never sends.
 */
async function gstDecodedFrames(source: string[], frames: number, timeoutMs = 20_000): Promise<{ frames: number; stderr: string }> {
  const p = run('gst-launch-1.0', ['-v', ...source, '!', 'queue', '!', 'h264parse', '!', 'avdec_h264', '!', 'fakesink', 'name=vout', 'silent=false', 'sync=false']);
  let n = 0;
  const counting = (d: Buffer) => {
    n += d.toString().split('vout:sink').length - 1;
    if (n >= frames) p.kill();
  };
  p.child.stdout!.on('data', counting);
  const timer = setTimeout(p.kill, timeoutMs);
  await p.exited;
  clearTimeout(timer);
  return { frames: n, stderr: p.stderr() };
}

/** ffprobe reading `seconds` of a live URL: its streams and where each starts. */
async function probeFor(url: string, seconds: number): Promise<{ kinds: string[]; starts: number[]; stderr: string }> {
  const p = run('ffprobe', ['-v', 'error', '-read_intervals', `%+${seconds}`, '-show_entries', 'stream=codec_type,codec_name,start_time', '-of', 'json', url]);
  const timer = setTimeout(p.kill, (seconds + 15) * 1000);
  await p.exited;
  clearTimeout(timer);
  const out = JSON.parse(p.stdout().toString() || '{"streams":[]}') as { streams: { codec_type: string; codec_name: string; start_time?: string }[] };
  return { kinds: out.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(), starts: out.streams.map((s) => Number(s.start_time)), stderr: p.stderr() };
}

describe('GStreamer publishing over RTMP and playing HTTP-FLV, RTMP, TS and HLS', () => {
  let gw: Gateway;
  let http: number;
  let rtmp: number;
  let pub: Proc;

  before(async () => {
    const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 100ms; } hls { enabled on; hls_fragment 1; hls_window 4; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
    http = gw.port('http');
    rtmp = gw.port('rtmp');
    pub = gstPublish(`rtmp://127.0.0.1:${rtmp}/live/g`);
    const name = { vhost: V, app: 'live', stream: 'g' };
    await waitFor('the GStreamer publish', () => gw.hub.find(name)?.videoHeader && gw.hub.find(name)?.audioHeader, 15_000);
    // flvmux repeats onMetaData stamped with its running time: wait until it has.
    await waitFor('onMetaData sent again mid-stream', () => (gw.hub.find(name)?.metadata?.dts ?? 0) > 0, 15_000);
  });

  after(async () => {
    pub?.kill();
    await gw?.close();
  });

  test('ffprobe sees exactly one video and one audio stream on HTTP-FLV and RTMP, starting at 0', async () => {
    const [flv, rtmpProbe] = await Promise.all([probeFor(`http://127.0.0.1:${http}/live/g.flv`, 6), probeFor(`rtmp://127.0.0.1:${rtmp}/live/g`, 6)]);
    for (const [what, p] of [['HTTP-FLV', flv], ['RTMP', rtmpProbe]] as const) {
      assert.deepEqual(p.kinds, ['audio:aac', 'video:h264'], `${what}: no data stream from the repeated onMetaData\n${p.stderr}`);
      assert.ok(p.starts.every((t) => t >= 0 && t < 1), `${what}: the player's timeline starts at 0 (${p.starts.join(', ')})`);
    }
  });

  test('GStreamer plays it back: souphttpsrc (FLV, TS, HLS) and rtmp2src decode frames', async () => {
    const base = `http://127.0.0.1:${http}/live/g`;
    const results = await Promise.all([
      gstDecodedFrames(['souphttpsrc', `location=${base}.flv`, '!', 'flvdemux'], 25),
      gstDecodedFrames(['rtmp2src', `location=rtmp://127.0.0.1:${rtmp}/live/g`, '!', 'flvdemux'], 25),
      gstDecodedFrames(['souphttpsrc', `location=${base}.ts`, '!', 'tsdemux'], 25),
      gstDecodedFrames(['souphttpsrc', `location=${base}.m3u8`, '!', 'hlsdemux', '!', 'tsdemux'], 25),
    ]);
    for (const [i, what] of ['HTTP-FLV', 'RTMP', 'TS', 'HLS'].entries()) {
      assert.ok(results[i].frames >= 25, `${what}: ${results[i].frames} frames decoded\n${results[i].stderr.slice(0, 2000)}`);
    }
  });
});
