import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfigText } from '../../../src/config/index.js';
import { Gateway } from '../../../src/gateway.js';
import { memoryLogger } from '../../../src/log.js';
import { MSG_AUDIO, MSG_DATA_AMF0, MSG_VIDEO } from '../../../src/ingest/rtmp/chunk.js';
import { encodeAmf0 } from '../../../src/ingest/rtmp/amf0.js';

import { FlvPlayer } from '../../helpers/flv-player.js';
import { RtmpTestClient } from '../../helpers/rtmp-client.js';
import { waitFor } from '../../helpers/ffmpeg.js';

/**
 * The timelines players really get, over the wire: an RTMP publisher 298 s into its session
 * (headers at 0, frames from 298000, onMetaData sent again at 7790), an HTTP-FLV and an RTMP
 * player joining it, under each `play { time_jitter …; }` of three vhosts.
 */

const AVC_HEADER = Buffer.from('17000000000142c00affe100166742c00ada109b011000000300100000030320f1226a01000468ce0fc8', 'hex');
const AAC_HEADER = Buffer.from('af00120856e500', 'hex');
const frame = (key: boolean) => Buffer.from([key ? 0x17 : 0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
const AAC_FRAME = Buffer.from([0xaf, 1, 0x21, 0x10]);

describe('player timelines over HTTP-FLV and RTMP', () => {
  let gw: Gateway | null = null;
  after(() => gw?.close());

  /** Publishes under `mode`, lets an HTTP-FLV and an RTMP player join, returns what each saw. */
  async function session(mode: string): Promise<{ flv: string[]; rtmp: string[] }> {
    await gw?.close();
    const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 20ms; ${mode ? `time_jitter ${mode};` : ''} } hls { enabled off; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
    const [http, rtmp, stream] = [gw.port('http'), gw.port('rtmp'), 's'];
    const pub = new RtmpTestClient(rtmp);
    await pub.open('live');
    pub.command('publish', 1, null, stream, 'live');
    await pub.until('publish', () => pub.statuses.includes('NetStream.Publish.Start'));
    pub.metadata({ width: 64, height: 64 });
    pub.media(MSG_VIDEO, 0, AVC_HEADER);
    pub.media(MSG_AUDIO, 0, AAC_HEADER);
    let t = 298_000;
    const send = (n: number) => {
      for (let i = 0; i < n; i++, t += 40) {
        pub.media(MSG_VIDEO, t, frame(i === 0));
        pub.media(MSG_AUDIO, t + 3, AAC_FRAME);
      }
    };
    send(5);
    const name = { vhost: '__defaultVhost__', app: 'live', stream };
    const hub = gw.hub;
    await waitFor('frames at the hub', () => (hub.find(name)?.frames ?? 0) >= 5);
    const flv = new FlvPlayer(http, `/live/${stream}.flv`);
    const player = new RtmpTestClient(rtmp);
    await player.open('live');
    player.command('play', 1, null, stream, -2);
    await player.until('the join burst', () => player.messages.some((m) => m.type === MSG_VIDEO && m.payload[1] === 1));
    await waitFor('the HTTP-FLV join burst', () => flv.packets.some((p) => p.pkt.kind === 'video' && !p.pkt.header));
    // GStreamer's flvmux sends onMetaData again, stamped with its running time.
    pub.send([{ csid: 4, type: MSG_DATA_AMF0, streamId: 1, timestamp: 7790, payload: encodeAmf0('@setDataFrame', 'onMetaData', { width: 64, height: 64 }) }]);
    send(3);
    await player.until('the last frame', () => player.messages.filter((m) => m.type === MSG_VIDEO && m.payload[1] === 1).length >= 8);
    await waitFor('the last HTTP-FLV frame', () => flv.packets.filter((p) => p.pkt.kind === 'video' && !p.pkt.header).length >= 8);
    const label = (kind: string, header: boolean, dts: number) => `${kind}${header ? 'H' : ''}@${dts}`;
    const out = {
      flv: flv.packets.map((p) => label(p.pkt.kind, p.pkt.header, p.pkt.dts)),
      rtmp: player.messages.filter((m) => m.type === MSG_VIDEO || m.type === MSG_AUDIO || (m.type === MSG_DATA_AMF0 && m.payload.includes('onMetaData')))
        .map((m) => label(m.type === MSG_VIDEO ? 'video' : m.type === MSG_AUDIO ? 'audio' : 'script', (m.type === MSG_VIDEO || m.type === MSG_AUDIO) && m.payload[1] === 0, m.timestamp)),
    };
    flv.close();
    player.close();
    pub.close();
    return out;
  }

  test('full (default): every player starts at 0 with metadata and headers, onMetaData sent again stays at 0', async () => {
    const seen = await session('');
    for (const [what, s] of Object.entries(seen)) {
      assert.deepEqual(s.slice(0, 5), ['script@0', 'videoH@0', 'audioH@0', 'video@0', 'audio@3'], `${what}: ${s.join(' ')}`);
      assert.deepEqual(s.filter((x) => x.startsWith('script')), ['script@0', 'script@0'], `${what}: the repeated onMetaData at 0 too`);
      assert.equal(s.at(-2), 'video@280', `${what}: 8 frames 40 ms apart`);
    }
  });

  test('zero starts at 0 too; off passes the publisher\'s timestamps through', async () => {
    const zero = await session('zero');
    assert.deepEqual(zero.flv.slice(0, 4), ['script@0', 'videoH@0', 'audioH@0', 'video@0']);
    assert.deepEqual(zero.rtmp.slice(0, 4), ['script@0', 'videoH@0', 'audioH@0', 'video@0']);
    const off = await session('off');
    assert.deepEqual(off.flv.slice(0, 4), ['script@0', 'videoH@0', 'audioH@0', 'video@298000']);
    assert.ok(off.flv.includes('script@7790'), 'metadata as it was sent');
    assert.deepEqual(off.rtmp.slice(0, 4), ['script@0', 'videoH@0', 'audioH@0', 'video@298000']);
  });

  test('time_jitter takes full, zero or off and nothing else', () => {
    assert.throws(() => loadConfigText('vhost __defaultVhost__ { play { time_jitter sometimes; } }', 'bad.conf'), (e: unknown) => e instanceof ConfigError && /bad\.conf:1: "time_jitter" expects full, zero or off, got "sometimes"/.test(e.message));
  });
});
