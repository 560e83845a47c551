import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { decodeAmf0All, encodeAmf0, type AmfObject } from '../../src/ingest/rtmp/amf0.js';
import { ChunkWriter, MSG_ABORT, MSG_ACK, MSG_COMMAND_AMF0, MSG_COMMAND_AMF3, MSG_SET_CHUNK_SIZE, MSG_SET_PEER_BANDWIDTH, MSG_USER_CONTROL, MSG_WINDOW_ACK_SIZE } from '../../src/ingest/rtmp/chunk.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';

/**
 * The RTMP session's protocol replies, seen by a bare client against an in-process gateway:
 * what ffmpeg does not exercise (pings, acknowledgements, AMF3 command envelopes, unknown calls,
 * unpublish and publish again on one connection, Abort).
 */

const V = '__defaultVhost__';
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const commands = (c: RtmpTestClient) => c.messages.filter((m) => m.type === MSG_COMMAND_AMF0).map((m) => decodeAmf0All(m.payload));

describe('RTMP session protocol', () => {
  let gw: Gateway;
  let port: number;
  let lines: string[];
  const open: RtmpTestClient[] = [];
  const client = () => {
    const c = new RtmpTestClient(port);
    open.push(c);
    return c;
  };
  before(async () => {
    const m = memoryLogger();
    lines = m.lines;
    gw = await Gateway.start(loadConfigText(`listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 0; } }`, 'rtmp.conf'), { log: m.log });
    port = gw.port('rtmp');
  });
  after(async () => {
    for (const c of open) c.close();
    await gw.close();
  });

  test('connect: window, peer bandwidth and chunk size come before the _result with Connect.Success', async () => {
    const c = client();
    await c.open('live');
    const types = c.messages.map((m) => m.type);
    const result = types.indexOf(MSG_COMMAND_AMF0);
    for (const t of [MSG_WINDOW_ACK_SIZE, MSG_SET_PEER_BANDWIDTH, MSG_SET_CHUNK_SIZE]) {
      const at = types.indexOf(t);
      assert.ok(at >= 0 && at < result, `message type ${t} before the _result: ${types.join(',')}`);
    }
    assert.equal(c.messages[types.indexOf(MSG_SET_CHUNK_SIZE)].payload.readUInt32BE(0), 4096);
    const [name, txn, , info] = commands(c)[0];
    assert.equal(name, '_result');
    assert.equal(txn, 1);
    assert.equal((info as AmfObject).code, 'NetConnection.Connect.Success');
    assert.deepEqual(commands(c)[1].slice(0, 4), ['_result', 2, null, 1], 'createStream answers stream id 1');
  });

  test('ping request → ping response; a window ack size from the peer is acknowledged', async () => {
    const c = client();
    await c.open('live');
    c.send([{ csid: 2, type: MSG_USER_CONTROL, streamId: 0, timestamp: 0, payload: Buffer.from([0, 6, 0, 0, 0x12, 0x34]) }]);
    await c.until('ping response', () => c.messages.some((m) => m.type === MSG_USER_CONTROL && m.payload.readUInt16BE(0) === 7));
    const pong = c.messages.find((m) => m.type === MSG_USER_CONTROL && m.payload.readUInt16BE(0) === 7)!;
    assert.equal(pong.payload.readUInt32BE(2), 0x1234);
    c.send([{ csid: 2, type: MSG_WINDOW_ACK_SIZE, streamId: 0, timestamp: 0, payload: u32(2000) }]);
    // Notifications (transaction 0) of a command nobody knows: ignored, but they count as bytes.
    for (let i = 0; i < 10; i++) c.send([{ csid: 3, type: MSG_COMMAND_AMF0, streamId: 0, timestamp: 0, payload: encodeAmf0('noise', 0, null, 'x'.repeat(400)) }]);
    await c.until('an acknowledgement', () => c.messages.some((m) => m.type === MSG_ACK));
    assert.ok(c.messages.find((m) => m.type === MSG_ACK)!.payload.readUInt32BE(0) >= 2000);
    assert.ok(!c.isClosed);
  });

  test('unknown calls get _error; AMF3-envelope commands are understood', async () => {
    const c = client();
    await c.open('live');
    c.send([{ csid: 3, type: MSG_COMMAND_AMF0, streamId: 0, timestamp: 0, payload: encodeAmf0('getStreamLength', 7, null, 'a') }]);
    c.send([{ csid: 3, type: MSG_COMMAND_AMF3, streamId: 0, timestamp: 0, payload: Buffer.concat([Buffer.from([0]), encodeAmf0('createStream', 8, null)]) }]);
    await c.until('both answers', () => commands(c).some((v) => v[1] === 8));
    const byTxn = new Map(commands(c).map((v) => [v[1], v]));
    assert.equal(byTxn.get(7)![0], '_error');
    assert.equal((byTxn.get(7)![3] as AmfObject).code, 'NetConnection.Call.Failed');
    assert.deepEqual(byTxn.get(8)!.slice(0, 4), ['_result', 8, null, 2], 'a second createStream gets stream id 2');
  });

  test('FCUnpublish ends the stream with Unpublish.Success; the same connection may publish again', async () => {
    const c = client();
    await c.publish('live', 'again');
    assert.deepEqual(c.statuses, ['NetStream.Publish.Start']);
    assert.ok(gw.hub.find({ vhost: V, app: 'live', stream: 'again' }));
    c.command('FCUnpublish', 0, null, 'again');
    await c.until('Unpublish.Success', () => c.statuses.includes('NetStream.Unpublish.Success'));
    assert.equal(gw.hub.find({ vhost: V, app: 'live', stream: 'again' }), undefined);
    c.command('publish', 1, null, 'again', 'live');
    await c.until('a second Publish.Start', () => c.statuses.filter((s) => s === 'NetStream.Publish.Start').length === 2);
    assert.ok(gw.hub.find({ vhost: V, app: 'live', stream: 'again' }));
  });

  test('Abort of a half-sent message drops it; the publish goes on', async () => {
    const c = client();
    await c.publish('live', 'abort');
    const source = gw.hub.find({ vhost: V, app: 'live', stream: 'abort' })!;
    // A 10,000-byte video message of which only the first 4096-byte chunk is sent, then Abort.
    const whole = c.writer.write([{ csid: 6, type: 9, streamId: 1, timestamp: 0, payload: Buffer.alloc(10_000, 0x17) }]);
    c.socket.write(whole.subarray(0, 12 + 4096));
    c.send([{ csid: 2, type: MSG_ABORT, streamId: 0, timestamp: 0, payload: u32(6) }]);
    const header = Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80]);
    // After an Abort the next message on that chunk stream starts with a full (type 0) header.
    const fresh = new ChunkWriter(false);
    fresh.chunkSize = 4096;
    c.socket.write(fresh.write([{ csid: 6, type: 9, streamId: 1, timestamp: 0, payload: header }]));
    await c.until('the sequence header', () => source.videoHeader !== null, 3000);
    assert.deepEqual(source.videoHeader?.data, header);
    assert.ok(!c.isClosed);
  });

  test('a player waiting for a publisher may give up (closeStream) and play a live stream instead', async () => {
    const pub = client();
    await pub.publish('live', 'there');
    const c = client();
    await c.play('live', 'notyet');
    await c.until('the wait charged to the pool', () => gw.budgets.unauthorized.held > 0 && lines.some((l) => /play of live\/notyet waits/.test(l)));
    c.command('closeStream', 1, null);
    c.command('play', 1, null, 'there', -2);
    await c.until('Play.Start', () => c.statuses.includes('NetStream.Play.Start'));
    assert.deepEqual(c.statuses.slice(0, 2), ['NetStream.Play.Reset', 'NetStream.Play.Start']);
    // Bringing the first stream up now does not start a second play on the connection.
    const late = client();
    await late.publish('live', 'notyet');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.statuses.filter((x) => x === 'NetStream.Play.Start').length, 1);
    assert.ok(!c.isClosed);
  });

  test('play before connect closes the connection with one log line', async () => {
    const c = client();
    await c.ready();
    const mark = lines.length;
    c.command('play', 0, null, 'x');
    await c.closed;
    const said = lines.slice(mark).filter((l) => l.includes('before connect'));
    assert.equal(said.length, 1, lines.slice(mark).join('\n'));
  });
});
