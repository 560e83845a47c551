import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, encode, HpackError, huffmanDecode } from '../../../src/http/h2/hpack.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('RFC 7541 C.4: three requests with Huffman strings, the later ones indexing the dynamic table', () => {
  const d = new Decoder();
  assert.deepEqual(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')).fields,
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
  // 0xbe is index 62: the :authority the first request added.
  assert.deepEqual(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')).fields,
    [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
  assert.deepEqual(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')).fields,
    [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]);
});

test('the dynamic table evicts oldest first and obeys size updates up to the SETTINGS limit', () => {
  const d = new Decoder(4096);
  const lit = (name: string, value: string) => Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  // Size update to 80 (0x3f then 80 - 31 = 49), then two 40-octet entries, then a third: the first goes.
  d.decode(Buffer.concat([Buffer.from([0x3f, 49]), lit('aaaa', 'bbbb'), lit('cccc', 'dddd')]));
  assert.deepEqual(d.decode(Buffer.from([0xbe, 0xbf])).fields, [['cccc', 'dddd'], ['aaaa', 'bbbb']]);
  d.decode(lit('eeee', 'ffff'));
  assert.deepEqual(d.decode(Buffer.from([0xbe, 0xbf])).fields, [['eeee', 'ffff'], ['cccc', 'dddd']]);
  assert.throws(() => d.decode(Buffer.from([0xc0])), HpackError, 'index 64 is gone');
  assert.throws(() => new Decoder(4096).decode(Buffer.from([0x3f, 0xe2, 0x1f])), HpackError, 'a size above SETTINGS_HEADER_TABLE_SIZE');
  assert.throws(() => new Decoder().decode(Buffer.from([0x82, 0x20])), HpackError, 'a size update after a field');
  assert.throws(() => new Decoder().decode(Buffer.from([0x80])), HpackError, 'index 0');
  assert.throws(() => new Decoder().decode(Buffer.from([0x04, 0x05, 0x61])), HpackError, 'a string longer than the block');
  assert.throws(() => new Decoder().decode(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), HpackError, 'an integer without end');
});

test('Huffman: padding is at most 7 one-bits; EOS inside a string is an error', () => {
  assert.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'), 0, 12), 'www.example.com');
  assert.throws(() => huffmanDecode(Buffer.from([0xff]), 0, 1), HpackError, '8 bits of padding');
  assert.equal(huffmanDecode(Buffer.from([0x1f]), 0, 1), 'a', "'a' is 00011, then three one-bits of padding");
  assert.throws(() => huffmanDecode(Buffer.from([0x00]), 0, 1), HpackError, "'0' is 00000: padding of zeros");
  assert.throws(() => huffmanDecode(hex('ffff ffff'), 0, 4), HpackError, 'EOS (30 one-bits)');
});

test('the encoder: static matches as indexes, the rest as literals a decoder reads back', () => {
  const fields: [string, string][] = [[':status', '200'], ['content-type', 'text/plain'], ['x-mine', 'v'.repeat(300)], [':status', '431']];
  const block = encode(fields);
  assert.equal(block[0], 0x88, ':status 200 is static index 8');
  assert.deepEqual(new Decoder().decode(block).fields, fields);
  const d = new Decoder();
  assert.equal(d.decode(block, 100).tooLarge, true, 'past the header list bound');
});
