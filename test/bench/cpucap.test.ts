import { test } from 'node:test';
import assert from 'node:assert/strict';
import { track } from '../helpers/proc.js';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { openCpuCap } from '../../bench/lib/cpucap.js';
import { cpuSeconds, sleep } from '../../bench/lib/procs.js';

/**
 * The benchmark's capped rows rest on this: a process held by the cap gets no more than its share
 * of a core, however hard it spins, and goes back to the group it came from when released.
 */

const probe = openCpuCap(0.2, `streamgate-cpucap-test-${process.pid}`);

test('a process held by the CPU cap gets its share of a core and no more, then goes back where it was', { skip: typeof probe === 'string' ? `no CPU quota on this machine: ${probe}` : false, timeout: 30_000 }, async () => {
  const cap = probe as Exclude<typeof probe, string>;
  const spinner = track(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  try {
    const pid = spinner.pid!;
    await sleep(200);
    const home = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    const release = cap.hold([pid]);
    assert.notEqual(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), home, 'held: the process is in another group');
    const c0 = cpuSeconds(pid);
    const t0 = performance.now();
    await sleep(1500);
    const share = (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
    release();
    // 20% allowed; the margin covers /proc's 10 ms ticks and the period the move landed in.
    assert.ok(share > 0.05 && share < 0.3, `a spinning process held to 20% of a core used ${(share * 100).toFixed(0)}%`);
    assert.equal(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), home, 'released: back in the group it came from');
    assert.match(cap.describe, /^20% of a core \(cgroup v[12] CFS quota, 100 ms period\)$/);
  } finally {
    const exited = new Promise((r) => spinner.once('exit', r));
    spinner.kill('SIGKILL');
    await exited;
    cap.close();
  }
});
