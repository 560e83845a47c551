import { test } from 'node:test';
import { runChurn } from '../helpers/churn.js';

// The counts, in two rounds so a leak shows as growth after the first; about 10 s on a
// shared 2-core machine. `npm run soak` runs five times as many (soak/churn.soak.ts).
test('churn: 1,000 publish/unpublish and 10,000 player join/leave cycles leave memory, fds and the hub at baseline', async (t) => {
  // RSS bounds sized for V8's working heap on a busy 2-core machine (seen: +50 to +93 MiB overall,
  // +7 to +38 MiB after round 1); the fd count and the empty hub are the sharp checks, and
  // soak/churn.soak.ts shows the plateau over five rounds.
  await runChurn(t, { rounds: 2, publishCycles: 500, publishWidth: 4, playerCycles: 5000, playerWidth: 50, rssBoundMiB: 128, lateRssBoundMiB: 48, fdSlack: 6 });
});
