import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { generateSelfSigned } from '../../../src/net/selfsigned.js';

const PAIRS = 1000;

// One serial in 256 used to be a non-minimal DER INTEGER that OpenSSL refuses ("illegal padding"):
// the gateway then failed to start, on every start, since the pair is saved. A thousand tries
// would have hit it with a probability of 98 %.
test(`${PAIRS} generated self-signed pairs are all usable by OpenSSL, for localhost`, () => {
  const serials = new Set<string>();
  for (let i = 0; i < PAIRS; i++) {
    const pair = generateSelfSigned();
    assert.doesNotThrow(() => createSecureContext(pair), `pair ${i} is refused`);
    const x = new X509Certificate(pair.cert);
    serials.add(x.serialNumber);
    if (i === 0) {
      assert.ok(x.checkHost('localhost'));
      assert.ok(x.checkIP('127.0.0.1'));
      assert.ok(x.checkPrivateKey(createPrivateKey(pair.key)));
    }
  }
  assert.equal(serials.size, PAIRS, 'serials are unique');
});
