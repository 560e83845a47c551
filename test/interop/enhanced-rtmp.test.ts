import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { probeFinishedPlaylist, run, waitFor } from '../helpers/ffmpeg.js';
import { sleep } from '../helpers/proc.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';
import { encode, enhancedTags, exVideoBody, flvBytes, type Encoded, type ExCodec, type ExTag } from '../helpers/enhanced-flv.js';

/**
 * HEVC and AV1 published the way OBS 30+ and ffmpeg 6.1+ do it, over Enhanced RTMP and Enhanced
 * HTTP-FLV: HTTP-FLV and RTMP players get the very same tags back, HLS (MPEG-TS) carries the HEVC as
 * ffprobe reads it, and the API names the codec as SRS does.
 */

interface Publisher {
  send(tags: readonly ExTag[]): void;
  end(): Promise<void>;
}

function rtmpPublisher(port: number, stream: string): Promise<Publisher> {
  const c = new RtmpTestClient(port);
  return c.publish('live', stream).then(() => {
    assert.deepEqual(c.statuses, ['NetStream.Publish.Start']);
    return {
      send: (tags) => {
        for (const t of tags) c.media(9, t.dts, t.body);
      },
      end: async () => {
        c.close();
        await c.closed;
      },
    };
  });
}

function flvPublisher(port: number, stream: string): Promise<Publisher> {
  const req = http.request({ host: '127.0.0.1', port, path: `/live/${stream}.flv`, method: 'POST', agent: false, headers: { 'Transfer-Encoding': 'chunked' } });
  const answered = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
  let first = true;
  return Promise.resolve({
    send: (tags) => {
      req.write(flvBytes(tags, first));
      first = false;
    },
    end: async () => {
      req.end();
      assert.equal(await answered, 200);
    },
  });
}

interface ApiStream {
  name: string;
  clients: number;
  video: { codec: string; profile: string; level: string; width: number; height: number } | null;
}

async function apiStream(port: number, name: string): Promise<ApiStream | undefined> {
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/streams/`);
  const body = (await r.json()) as { streams: ApiStream[] };
  return body.streams.find((s) => s.name === name);
}

describe('Enhanced RTMP / Enhanced FLV: HEVC and AV1 in, the same tags out, HEVC into HLS', () => {
  let gw: Gateway;
  let http_: number;
  let rtmp: number;
  const media = new Map<ExCodec, Encoded>();

  before(async () => {
    const { log } = memoryLogger();
    const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; } hls { enabled on; hls_fragment 1; hls_window 20; hls_dispose 30s; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
    http_ = gw.port('http');
    rtmp = gw.port('rtmp');
    media.set('hevc', await encode('hevc'));
    media.set('av1', await encode('av1'));
  });
  after(async () => {
    await gw.close();
  });

  const cases: { codec: ExCodec; via: 'rtmp' | 'http-flv'; api: string }[] = [
    { codec: 'hevc', via: 'rtmp', api: 'H265' },
    { codec: 'hevc', via: 'http-flv', api: 'H265' },
    { codec: 'av1', via: 'rtmp', api: 'AV1' },
    { codec: 'av1', via: 'http-flv', api: 'AV1' },
  ];
  for (const { codec, via, api } of cases) {
    test(`${codec} over ${via}: HTTP-FLV and RTMP players get every tag byte for byte at its time; the API says ${api}${codec === 'hevc' ? '; HLS-TS is HEVC to ffprobe' : ''}`, async () => {
      const enc = media.get(codec)!;
      const tags = enhancedTags(enc);
      const name = `${codec}-${via}`;
      const pub = await (via === 'rtmp' ? rtmpPublisher(rtmp, name) : flvPublisher(http_, name));
      pub.send(tags.slice(0, 1));
      const s = await waitFor('the stream in the API with its codec', async () => {
        const st = await apiStream(http_, name);
        return st?.video?.width ? st : undefined;
      }, 20_000);
      assert.deepEqual(s.video, { codec: api, profile: 'Main', level: codec === 'hevc' ? s.video!.level : '2.0', width: enc.width, height: enc.height });
      if (codec === 'hevc') assert.match(s.video!.level, /^\d(\.\d)?$/);

      const player = new FlvPlayer(http_, `/live/${name}.flv`);
      await waitFor('the player seated', () => player.packets.length >= 1, 20_000);
      const rtmpPlayer = new RtmpTestClient(rtmp);
      await rtmpPlayer.play('live', name);
      await rtmpPlayer.until('Play.Start', () => rtmpPlayer.statuses.includes('NetStream.Play.Start'), 20_000);
      pub.send(tags.slice(1));
      const endBody = tags[tags.length - 1].body;
      await waitFor('the sequence end at the player', () => player.packets.some((p) => p.pkt.data.equals(endBody)), 20_000);
      await rtmpPlayer.until('the sequence end at the RTMP player', () => rtmpPlayer.messages.some((m) => m.type === 9 && m.payload.equals(endBody)), 20_000);
      const viaRtmp = rtmpPlayer.messages.filter((m) => m.type === 9);
      assert.equal(viaRtmp.length, tags.length);
      viaRtmp.forEach((m, i) => {
        assert.ok(m.payload.equals(tags[i].body), `RTMP message #${i} body`);
        assert.equal(m.timestamp, tags[i].dts, `RTMP message #${i} timestamp`);
      });
      rtmpPlayer.close();
      const got = player.packets.filter((p) => p.pkt.kind === 'video').map((p) => p.pkt);
      assert.equal(got.length, tags.length);
      got.forEach((p, i) => {
        assert.ok(p.data.equals(tags[i].body), `tag #${i} body`);
        assert.equal(p.dts, tags[i].dts, `tag #${i} timestamp`);
      });
      assert.equal(got.filter((p) => p.keyframe).length, enc.samples.filter((x) => x.key).length);
      assert.equal(player.header?.hasVideo, true);
      player.close();
      await pub.end();

      if (codec !== 'hevc') return;
      const url = `http://127.0.0.1:${http_}/live/${name}.m3u8`;
      await probeFinishedPlaylist(url, `hevc,${enc.width},${enc.height},${enc.samples.length}`);
    });
  }

  test('a live .ts of an HEVC stream decodes cleanly; an unknown FourCC or a hostile hvcC is ignored and the session lives on', async () => {
    const enc = media.get('hevc')!;
    const tags = enhancedTags(enc);
    const name = 'hostile';
    const pub = await rtmpPublisher(rtmp, name);
    const junk: ExTag[] = [
      { dts: 0, body: exVideoBody(1, 0, 'vp09', Buffer.from([1, 2, 3])) },
      { dts: 0, body: exVideoBody(1, 0, 'hvc1', Buffer.from([1, 0, 0])) },
      { dts: 0, body: Buffer.from([0x91, 0x68]) },
    ];
    pub.send([...junk, tags[0]]);
    const s = await waitFor('the stream', async () => (await apiStream(http_, name))?.video?.width ? apiStream(http_, name) : undefined);
    assert.equal(s!.video!.codec, 'H265');
    const ts = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', `http://127.0.0.1:${http_}/live/${name}.ts`, '-map', '0:v', '-f', 'framecrc', '-']);
    await waitFor('the .ts player seated', async () => ((await apiStream(http_, name))?.clients ?? 0) >= 2, 20_000);
    pub.send(tags.slice(1));
    await new Promise((r) => setTimeout(r, 500));
    await pub.end();
    await ts.exited;
    assert.equal(ts.stderr(), '');
    const frames = ts.stdout().toString().split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(frames.length, enc.samples.length, 'every HEVC frame decoded from the live .ts');
  });

  for (const codec of ['hevc', 'av1'] as const) {
    test(`${codec} from Enhanced RTMP into fMP4 HLS (hls_fmp4): ffprobe reads ${codec} with every frame and no error`, async () => {
      const { log } = memoryLogger();
      const fmp4 = await Gateway.start(loadConfigText(`listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
        vhost __defaultVhost__ { hls { enabled on; hls_fmp4 on; hls_fragment 1; hls_window 20; hls_dispose 30s; } }`, 'fmp4.conf'), { log });
      try {
        const enc = media.get(codec)!;
        const name = `${codec}fmp4`;
        const pub = await rtmpPublisher(fmp4.port('rtmp'), name);
        pub.send(enhancedTags(enc));
        await sleep(300);
        await pub.end();
        const url = `http://127.0.0.1:${fmp4.port('http')}/live/${name}.m3u8`;
        await probeFinishedPlaylist(url, `${codec},${enc.width},${enc.height},${enc.samples.length}`);
      } finally {
        await fmp4.close();
      }
    });
  }
});
