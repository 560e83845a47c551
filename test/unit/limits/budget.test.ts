import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Account, Budget } from '../../../src/limits/budget.js';

test('an account is bounded by its own cap and by the pool it shares with other connections', () => {
  const pool = new Budget('unauthorized', 1000);
  const a = new Account(pool, 600);
  const b = new Account(pool, 600);
  assert.equal(a.take(600), true);
  assert.equal(a.take(1), false, 'past its own cap');
  assert.equal(b.take(500), false, 'past the pool: 600 + 500 > 1000');
  assert.equal(b.take(400), true);
  assert.equal(pool.held, 1000);
  assert.equal(pool.refused, 2);
  a.give(100);
  assert.equal(pool.held, 900);
  a.close();
  assert.equal(pool.held, 400, 'closing gives back everything the connection held');
  assert.equal(a.take(1), false, 'a closed account takes nothing');
  b.give(10_000);
  assert.equal(pool.held, 0, 'giving back more than held never drives the pool negative');
});

test('detach moves a connection off the anonymous pool and keeps its own cap', () => {
  const pool = new Budget('unauthorized', 1000);
  const a = new Account(pool, 600);
  assert.equal(a.take(500), true);
  const own = a.detach();
  assert.equal(pool.held, 0);
  assert.equal(own.take(600), true);
  assert.equal(own.take(1), false);
  assert.equal(pool.held, 0);
});
