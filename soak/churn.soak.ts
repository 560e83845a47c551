import { test } from 'node:test';
import { runChurn } from '../test/helpers/churn.js';

// Five times the counts (test/reliability/churn.test.ts runs them once): a slow leak that
// hides in one round shows as growth over five.
test('churn soak: 5,000 publish/unpublish and 50,000 player join/leave cycles leave memory, fds and the hub at baseline', async (t) => {
  await runChurn(t, { rounds: 5, publishCycles: 1000, publishWidth: 4, playerCycles: 10_000, playerWidth: 50, rssBoundMiB: 96, lateRssBoundMiB: 32, fdSlack: 6 });
});
