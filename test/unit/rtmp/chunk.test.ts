import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ChunkReader, ChunkWriter, MAX_CHUNK_STREAMS, MAX_MESSAGE_BYTES, MAX_PEER_CHUNK_SIZE, MAX_PENDING_BYTES, MIN_PEER_CHUNK_SIZE, MSG_ABORT, MSG_AUDIO,
  MSG_COMMAND_AMF0, MSG_SET_CHUNK_SIZE, MSG_VIDEO, RtmpError, type OutMessage, type RtmpMessage,
} from '../../../src/ingest/rtmp/chunk.js';
import { Account, Budget, OBJECT_OVERHEAD_BYTES } from '../../../src/limits/budget.js';
import { rng } from '../../helpers/random.js';

function payload(n: number, seed: number): Buffer {
  const r = rng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

const msg = (csid: number, type: number, timestamp: number, size: number, streamId = 1): OutMessage => ({ csid, type, streamId, timestamp, payload: payload(size, csid * 7919 + timestamp + size) });

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

function strip(ms: RtmpMessage[]): OutMessage[] {
  return ms.map((m) => ({ csid: m.csid, type: m.type, streamId: m.streamId, timestamp: m.timestamp, payload: m.payload }));
}

/** A publish-like sequence: both header forms, interleaved chunk streams, a chunk size change, extended timestamps. */
function sampleStream(): { bytes: Buffer; msgs: OutMessage[] } {
  const w = new ChunkWriter();
  const msgs: OutMessage[] = [
    msg(3, MSG_COMMAND_AMF0, 0, 40, 0),
    msg(4, MSG_AUDIO, 0, 300),
    msg(6, MSG_VIDEO, 0, 1000),
    msg(4, MSG_AUDIO, 23, 300),
    msg(6, MSG_VIDEO, 40, 500),
    msg(4, MSG_AUDIO, 46, 300),
    msg(6, MSG_VIDEO, 80, 500),
  ];
  const parts = msgs.map((m) => w.write([m]));
  const resize: OutMessage = { csid: 2, type: MSG_SET_CHUNK_SIZE, streamId: 0, timestamp: 0, payload: u32(700) };
  parts.push(w.write([resize]));
  msgs.push(resize);
  w.chunkSize = 700;
  const later = [msg(70, MSG_VIDEO, 0xfffffe, 2000), msg(70, MSG_VIDEO, 0x1000010, 2000), msg(400, MSG_AUDIO, 0x1000020, 10)];
  for (const m of later) parts.push(w.write([m]));
  msgs.push(...later);
  return { bytes: Buffer.concat(parts), msgs };
}

describe('RTMP chunk stream', () => {
  test('round trip through every header type: the writer picks the smallest, the reader restores each field', () => {
    const w = new ChunkWriter();
    const cases: [OutMessage, number][] = [
      [msg(4, MSG_AUDIO, 1000, 100), 0],
      [msg(4, MSG_AUDIO, 1023, 120), 1], // new length
      [msg(4, MSG_AUDIO, 1050, 120), 2], // same length, new delta
      [msg(4, MSG_AUDIO, 1077, 120), 3], // same delta: nothing but the basic header
      [msg(4, MSG_VIDEO, 1100, 120), 1], // new type
      [msg(4, MSG_VIDEO, 1100, 120, 2), 0], // new message stream
      [msg(4, MSG_VIDEO, 900, 120, 2), 0], // time going back needs an absolute stamp
    ];
    const r = new ChunkReader();
    for (const [m, fmt] of cases) {
      const bytes = w.write([m]);
      assert.equal(bytes[0] >> 6, fmt, `header type for ts ${m.timestamp}`);
      assert.deepEqual(strip(r.push(bytes)), [m]);
    }
  });

  test('2- and 3-byte basic headers carry chunk stream ids 64..65599', () => {
    const w = new ChunkWriter();
    const msgs = [msg(63, MSG_AUDIO, 1, 10), msg(64, MSG_AUDIO, 2, 10), msg(319, MSG_AUDIO, 3, 10), msg(320, MSG_AUDIO, 4, 10), msg(65599, MSG_AUDIO, 5, 300)];
    const bytes = w.write(msgs);
    assert.deepEqual(strip(new ChunkReader().push(bytes)), msgs);
  });

  test('extended timestamps, on type-0 headers and on type-3 continuation chunks, with or without the repeat', () => {
    const m = msg(5, MSG_VIDEO, 0x12345678, 300);
    const repeated = new ChunkWriter().write([m]);
    // 1 + 11 + 4, then 128 bytes, then type-3 header + repeated 4 bytes …
    assert.equal(repeated.readUIntBE(1, 3), 0xffffff);
    assert.equal(repeated.readUInt32BE(12), 0x12345678);
    assert.equal(repeated[16 + 128], 0xc5, 'a type-3 continuation chunk');
    assert.equal(repeated.readUInt32BE(16 + 129), 0x12345678, 'which repeats the extended timestamp');
    assert.deepEqual(strip(new ChunkReader().push(repeated)), [m]);
    // A sender that does not repeat it (the 2009 spec is ambiguous): the same message, 8 bytes shorter.
    const bare = Buffer.concat([repeated.subarray(0, 16 + 129), repeated.subarray(16 + 133, 16 + 133 + 128 + 1), repeated.subarray(16 + 133 + 128 + 5)]);
    assert.equal(bare.length, repeated.length - 8);
    assert.deepEqual(strip(new ChunkReader().push(bare)), [m]);
    // A following type-3 message with the same extended delta: timestamps add up.
    const w = new ChunkWriter();
    const a = msg(5, MSG_VIDEO, 0x1000000, 50);
    const b = msg(5, MSG_VIDEO, 0x2000000, 50);
    const c = msg(5, MSG_VIDEO, 0x3000000, 50);
    const bytes = Buffer.concat([w.write([a]), w.write([b]), w.write([c])]);
    assert.deepEqual(strip(new ChunkReader().push(bytes)), [a, b, c]);
  });

  test('timestamps wrap at 2^32 as RTMP says, on deltas', () => {
    const w = new ChunkWriter();
    const a = msg(4, MSG_AUDIO, 0xfffffff0, 10);
    const b = { ...msg(4, MSG_AUDIO, 0xfffffff0 + 0x20, 10) };
    const bytes = Buffer.concat([w.write([a]), w.write([b])]);
    const out = new ChunkReader().push(bytes);
    assert.equal(out[0].timestamp, 0xfffffff0);
    assert.equal(out[1].timestamp, 0x10);
  });

  test('Set Chunk Size applies from the next chunk, also in the middle of one push', () => {
    const { bytes, msgs } = sampleStream();
    const r = new ChunkReader();
    assert.deepEqual(strip(r.push(bytes)), msgs);
    assert.equal(r.chunkSize, 700);
  });

  test('input split at every byte boundary, and byte by byte, gives the same messages', () => {
    const { bytes, msgs } = sampleStream();
    for (let i = 0; i <= bytes.length; i++) {
      const r = new ChunkReader();
      const got = [...r.push(bytes.subarray(0, i)), ...r.push(bytes.subarray(i))];
      assert.deepEqual(strip(got), msgs, `split at ${i}`);
    }
    const r = new ChunkReader();
    const got: RtmpMessage[] = [];
    for (let i = 0; i < bytes.length; i++) got.push(...r.push(bytes.subarray(i, i + 1)));
    assert.deepEqual(strip(got), msgs);
    assert.equal(r.bufferedBytes, 0);
  });

  test('Abort drops the unfinished message of a chunk stream', () => {
    const w = new ChunkWriter();
    const big = w.write([msg(6, MSG_VIDEO, 0, 1000)]);
    const abort = w.write([{ csid: 2, type: MSG_ABORT, streamId: 0, timestamp: 0, payload: u32(6) }]);
    const next = msg(6, MSG_VIDEO, 0, 10);
    const r = new ChunkReader();
    assert.deepEqual(r.push(big.subarray(0, 12 + 128)), []);
    assert.equal(r.bufferedBytes, 128 + OBJECT_OVERHEAD_BYTES, 'what arrived of it (and its object), not its declared 1000 bytes');
    const out = r.push(Buffer.concat([abort, new ChunkWriter().write([next])]));
    assert.deepEqual(strip(out).map((m) => m.type), [MSG_ABORT, MSG_VIDEO]);
    assert.deepEqual(out[1].payload, next.payload);
    assert.equal(r.bufferedBytes, 0);
  });

  test('protocol violations and absurd sizes are typed errors', () => {
    const header0 = (csid: number, len: number, type = MSG_VIDEO) => {
      const b = Buffer.alloc(12);
      b[0] = csid;
      b.writeUIntBE(len, 4, 3);
      b[7] = type;
      return b;
    };
    const cases: [string, Buffer, RegExp][] = [
      ['type 1 on an unknown chunk stream', Buffer.from([0x44, 0, 0, 0, 0, 0, 10, 9]), /starts with a type-1/],
      ['type 3 on an unknown chunk stream', Buffer.from([0xc4, 1, 2, 3]), /starts with a type-3/],
      ['a message over the bound', header0(4, MAX_MESSAGE_BYTES + 1), /over the/],
      ['Set Chunk Size 0', Buffer.concat([header0(2, 4, MSG_SET_CHUNK_SIZE), u32(0)]), /outside/],
      ['Set Chunk Size 1 (a server would do work per byte)', Buffer.concat([header0(2, 4, MSG_SET_CHUNK_SIZE), u32(1)]), /Set Chunk Size 1 is outside 128\.\.65536/],
      [`Set Chunk Size ${MIN_PEER_CHUNK_SIZE - 1}`, Buffer.concat([header0(2, 4, MSG_SET_CHUNK_SIZE), u32(MIN_PEER_CHUNK_SIZE - 1)]), /outside/],
      [`Set Chunk Size ${MAX_PEER_CHUNK_SIZE + 1}`, Buffer.concat([header0(2, 4, MSG_SET_CHUNK_SIZE), u32(MAX_PEER_CHUNK_SIZE + 1)]), /outside/],
      ['a new header in the middle of a message', Buffer.concat([header0(4, 200), Buffer.alloc(128), header0(4, 10)]), /before its 200-byte message/],
    ];
    for (const [what, bytes, re] of cases) {
      assert.throws(() => new ChunkReader().push(bytes), (e) => e instanceof RtmpError && re.test(e.message), what);
    }
    // Both ends of SRS's range are accepted.
    for (const size of [MIN_PEER_CHUNK_SIZE, MAX_PEER_CHUNK_SIZE]) {
      const r = new ChunkReader();
      r.push(Buffer.concat([header0(2, 4, MSG_SET_CHUNK_SIZE), u32(size)]));
      assert.equal(r.chunkSize, size);
    }
    // Declared lengths cost nothing: three 8 MiB messages opened with one chunk each hold those
    // chunks' bytes and one object each.
    const r = new ChunkReader();
    const opened: Buffer[] = [];
    for (let i = 0; i < 3; i++) opened.push(header0(3 + i, MAX_MESSAGE_BYTES), Buffer.alloc(128));
    assert.deepEqual(r.push(Buffer.concat(opened)), []);
    assert.equal(r.bufferedBytes, 3 * (128 + OBJECT_OVERHEAD_BYTES));
    // Bytes really held are what is bounded: two nearly whole messages (their buffers have grown to
    // the whole length), then a third one's first chunk.
    const big = new ChunkReader();
    const w = new ChunkWriter();
    w.chunkSize = MAX_PEER_CHUNK_SIZE;
    const fill: Buffer[] = [header0(2, 4, MSG_SET_CHUNK_SIZE), u32(MAX_PEER_CHUNK_SIZE)];
    for (let i = 0; i < 2; i++) {
      const whole = w.write([{ csid: 3 + i, type: MSG_VIDEO, streamId: 1, timestamp: 0, payload: Buffer.alloc(MAX_MESSAGE_BYTES) }]);
      // All but the last chunk (a 1-byte header and 64 KiB), so the message stays unfinished.
      fill.push(whole.subarray(0, whole.length - 1 - MAX_PEER_CHUNK_SIZE));
    }
    big.push(Buffer.concat(fill));
    assert.equal(big.bufferedBytes, 2 * (MAX_MESSAGE_BYTES + OBJECT_OVERHEAD_BYTES));
    assert.ok(big.bufferedBytes <= MAX_PENDING_BYTES);
    assert.throws(() => big.push(Buffer.concat([header0(5, 100_000), Buffer.alloc(MAX_PEER_CHUNK_SIZE)])), (e) => e instanceof RtmpError && /unfinished/.test(e.message));
    const many = Buffer.concat(Array.from({ length: MAX_CHUNK_STREAMS + 1 }, (_, i) => new ChunkWriter().write([msg(100 + i, MSG_AUDIO, 0, 1)])));
    assert.throws(() => new ChunkReader().push(many), (e) => e instanceof RtmpError && /chunk streams/.test(e.message));
  });

  test('one-byte-per-chunk assembly is gone: a message sent in 128-byte chunks holds at most twice its bytes, in one buffer', () => {
    const w = new ChunkWriter();
    const whole = w.write([{ csid: 6, type: MSG_VIDEO, streamId: 1, timestamp: 0, payload: Buffer.alloc(MAX_MESSAGE_BYTES, 7) }]);
    const r = new ChunkReader();
    let sent = 0;
    // 1 MiB of payload arrives in 128-byte chunks (8,192 chunks): one growing buffer, not 8,192 objects.
    for (let off = 0; sent < 1024 * 1024; off += 129 * 64) {
      r.push(whole.subarray(off, off + 129 * 64));
      sent = Math.min(MAX_MESSAGE_BYTES, ((off + 129 * 64 - 12) / 129) * 128);
      assert.ok(r.bufferedBytes <= 2 * sent + OBJECT_OVERHEAD_BYTES + 17, `${r.bufferedBytes} bytes held for ${sent} received`);
    }
  });

  test('unfinished messages are charged to the account before they are held; over it is a typed error; completion gives back', () => {
    const pool = new Budget('test', 1024 * 1024);
    const header0 = (csid: number, len: number) => {
      const b = Buffer.alloc(12);
      b[0] = csid;
      b.writeUIntBE(len, 4, 3);
      b[7] = MSG_VIDEO;
      return b;
    };
    // Per connection: 64 KiB. The 65th KiB of an unfinished message is refused.
    const a = new Account(pool, 64 * 1024);
    const r = new ChunkReader(a);
    const w = new ChunkWriter();
    const whole = w.write([{ csid: 6, type: MSG_VIDEO, streamId: 1, timestamp: 0, payload: Buffer.alloc(1024 * 1024) }]);
    assert.throws(() => r.push(whole), (e) => e instanceof RtmpError && /memory budget/.test(e.message));
    assert.ok(a.bytes <= 64 * 1024, `${a.bytes} charged`);
    assert.equal(pool.held, a.bytes, 'what the connection holds is held from the pool too');
    a.close();
    assert.equal(pool.held, 0, 'closing the connection gives everything back');
    // The pool: 20 connections of 64 KiB each cannot hold more than the 1 MiB pool.
    const readers = Array.from({ length: 20 }, () => new ChunkReader(new Account(pool, 64 * 1024)));
    let refused = 0;
    for (const x of readers) {
      try {
        x.push(Buffer.concat([header0(6, 100_000), Buffer.alloc(128 * 400)]).subarray(0, 12 + 128));
        for (let i = 1; i < 400; i++) x.push(Buffer.concat([Buffer.from([0xc6]), Buffer.alloc(128)]));
      } catch (err) {
        assert.ok(err instanceof RtmpError && /memory budget/.test(err.message), String(err));
        refused++;
      }
    }
    assert.ok(pool.held <= pool.limit, `the pool holds ${pool.held}`);
    assert.ok(refused >= 20 - Math.floor(1024 / 64), `${refused} of 20 connections were cut at the pool or their own cap`);
    // A complete message gives its charge back: many whole messages in a row hold nothing.
    const b = new Account(pool, 64 * 1024);
    const ok = new ChunkReader(b);
    const before = pool.held;
    for (let i = 0; i < 100; i++) ok.push(w.write([{ csid: 7, type: MSG_AUDIO, streamId: 1, timestamp: i, payload: Buffer.alloc(40_000) }]));
    assert.equal(b.bytes, 0);
    assert.equal(pool.held, before);
    // Moving to a detached account (a publisher was authorised) charges it at once and frees the pool.
    ok.push(whole.subarray(0, 12 + 128));
    const held = b.bytes;
    assert.equal(held, 128 + OBJECT_OVERHEAD_BYTES);
    const trusted = b.detach();
    trusted.limit = MAX_PENDING_BYTES;
    ok.moveTo(trusted);
    assert.equal(trusted.bytes, held);
    assert.equal(pool.held, before, 'the pool got the publisher\'s bytes back');
  });

  test('fuzz: 2,000 random and bit-flipped streams in random slices throw only typed errors and stay bounded', () => {
    const { bytes } = sampleStream();
    const r = rng(20261125);
    let typed = 0;
    let clean = 0;
    for (let i = 0; i < 2000; i++) {
      let input: Buffer;
      if (i % 2 === 0) {
        input = payload(1 + ((r() * 4000) | 0), i);
      } else {
        input = Buffer.from(bytes);
        const flips = 1 + ((r() * 8) | 0);
        for (let f = 0; f < flips; f++) input[(r() * input.length) | 0] ^= 1 << ((r() * 8) | 0);
      }
      const reader = new ChunkReader();
      try {
        for (let off = 0; off < input.length;) {
          const n = 1 + ((r() * 600) | 0);
          reader.push(input.subarray(off, off + n));
          off += n;
          assert.ok(reader.bufferedBytes <= MAX_PENDING_BYTES + 18, `input ${i}: ${reader.bufferedBytes} bytes held`);
        }
        clean++;
      } catch (err) {
        if (!(err instanceof RtmpError)) throw new Error(`input ${i}: ${(err as Error).stack}`);
        typed++;
      }
    }
    assert.equal(typed + clean, 2000);
    assert.ok(typed > 500, `most corrupt inputs are refused (${typed})`);
  });
});
