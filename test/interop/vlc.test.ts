import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { ffmpegArgs, run, waitFor, type Proc } from '../helpers/ffmpeg.js';

/**
 * VLC's stream output recording a live stream to a file (Debian's vlc-bin and vlc-plugin-base):
 * a recorder keeps every timestamp it is given, so a player timeline that does not start at 0, or
 * jumps, shows as a file whose duration is not the time recorded.
 *
 * VLC refuses to run as root. Under root the test runs it as `nobody` through util-linux's
 * setpriv (no user to create, nothing left behind), with a HOME of its own in a temporary dir.
 */

const RECORD_S = 15;
const V = '__defaultVhost__';

function cvlc(dir: string, args: string[]): Proc {
  const cmd = ['env', `HOME=${dir}`, 'cvlc', '-q', '--no-stats', ...args];
  if (process.getuid?.() === 0) return run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...cmd]);
  return run(cmd[0], cmd.slice(1));
}

/** Records `seconds` of `url` into an MPEG-TS file with VLC; returns ffprobe's duration of it. */
async function record(dir: string, url: string, name: string): Promise<{ duration: number; kinds: string[]; log: string }> {
  const file = join(dir, `${name}.ts`);
  const vlc = cvlc(dir, [`--run-time=${RECORD_S}`, url, '--sout', `#std{access=file,mux=ts,dst=${file}}`, 'vlc://quit']);
  const timer = setTimeout(vlc.kill, (RECORD_S + 20) * 1000);
  await vlc.exited;
  clearTimeout(timer);
  const probe = run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration:stream=codec_type', '-of', 'json', file]);
  await probe.exited;
  const out = JSON.parse(probe.stdout().toString() || '{}') as { format?: { duration?: string }; streams?: { codec_type: string }[] };
  return { duration: Number(out.format?.duration ?? NaN), kinds: (out.streams ?? []).map((s) => s.codec_type).sort(), log: vlc.stderr() + probe.stderr() };
}

describe('VLC records 15 s of a stream that has been live for minutes', () => {
  let gw: Gateway;
  let pub: Proc;
  let dir: string;

  before(async () => {
    const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 100ms; } hls { enabled off; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
    dir = mkdtempSync(join(tmpdir(), 'sg-vlc-'));
    chmodSync(dir, 0o777);
    // The publisher's clock is 300 s in, as an encoder's is after five minutes live; its sequence
    // headers were stamped 0 when it started.
    const args = ffmpegArgs(`http://127.0.0.1:${gw.port('http')}/live/rec.flv`, { seconds: RECORD_S + 20, gop: 50 });
    args.splice(args.length - 3, 0, '-output_ts_offset', '300');
    pub = run('ffmpeg', args);
    await waitFor('the publish', () => gw.hub.find({ vhost: V, app: 'live', stream: 'rec' })?.videoHeader, 10_000);
    await new Promise((r) => setTimeout(r, 2500));
  });

  after(async () => {
    pub?.kill();
    await gw?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('HTTP-FLV and RTMP recordings last 15 s (within 1 s), with video and audio', async () => {
    const [flv, rtmp] = await Promise.all([
      record(dir, `http://127.0.0.1:${gw.port('http')}/live/rec.flv`, 'flv'),
      record(dir, `rtmp://127.0.0.1:${gw.port('rtmp')}/live/rec`, 'rtmp'),
    ]);
    for (const [what, r] of [['HTTP-FLV', flv], ['RTMP', rtmp]] as const) {
      assert.ok(Math.abs(r.duration - RECORD_S) <= 1, `${what}: a ${RECORD_S} s recording is ${r.duration} s long\n${r.log.slice(0, 2000)}`);
      assert.deepEqual(r.kinds, ['audio', 'video'], what);
    }
  });
});
