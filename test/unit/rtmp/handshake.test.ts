import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HANDSHAKE_BYTES, HandshakeError, ServerHandshake } from '../../../src/ingest/rtmp/handshake.js';

describe('RTMP server handshake', () => {
  test('a digest-style C1 (Flash 9 version bytes, as ffmpeg and librtmp send) gets S0, S1 without a version, S2 = C1', () => {
    const c1 = Buffer.alloc(HANDSHAKE_BYTES);
    for (let i = 0; i < c1.length; i++) c1[i] = (i * 31) & 0xff;
    c1.set([9, 0, 124, 2], 4);
    const hs = new ServerHandshake(() => 0x01020304);
    // Fed in awkward pieces: C0 alone, then C1 in two halves.
    assert.equal(hs.push(Buffer.from([3])).state, 'more');
    assert.equal(hs.push(c1.subarray(0, 700)).state, 'more');
    const step = hs.push(c1.subarray(700));
    assert.equal(step.state, 'reply');
    if (step.state !== 'reply') return;
    assert.equal(step.reply.length, 1 + 2 * HANDSHAKE_BYTES);
    assert.equal(step.reply[0], 3);
    assert.equal(step.reply.readUInt32BE(1), 0x01020304, 'S1 time');
    assert.equal(step.reply.readUInt32BE(5), 0, 'S1 announces no server version, so clients skip the digest check');
    assert.deepEqual(step.reply.subarray(1 + HANDSHAKE_BYTES), c1, 'S2 echoes C1');
    // C2 plus the first bytes of the chunk stream in the same read.
    const done = hs.push(Buffer.concat([Buffer.alloc(HANDSHAKE_BYTES), Buffer.from([2, 0, 0])]));
    assert.deepEqual(done, { state: 'done', rest: Buffer.from([2, 0, 0]) });
  });

  test('any version byte but 3 is refused at once (RTMPE is 6; "G" is an HTTP request)', () => {
    for (const v of [6, 0x47, 0]) assert.throws(() => new ServerHandshake().push(Buffer.from([v])), HandshakeError);
  });
});
