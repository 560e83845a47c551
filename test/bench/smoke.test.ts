import { test } from 'node:test';
import assert from 'node:assert/strict';
import { track } from '../helpers/proc.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REQUIRED_TOOLS } from '../../bench/lib/tools.js';
import { which } from '../../bench/lib/procs.js';
import { capGroupName } from '../../bench/lib/cpucap.js';
import type { Report } from '../../bench/lib/report.js';

/**
 * `npm run bench -- --smoke` end to end: every peer starts, every workload runs and yields a
 * figure. Timings are not judged here (that is what the full run's table is for); a workload
 * that silently produced nothing, or a peer that answered errors, is.
 */

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
const missing = REQUIRED_TOOLS.filter((t) => !which(t));

test('benchmark smoke run: every workload gives streamgate and each peer a figure', { skip: missing.length ? `needs ${missing.join(', ')} (.ci/run installs them)` : false, timeout: 240_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'sg-bench-smoke-'));
  try {
    const child = track(spawn(process.execPath, [RUN, '--smoke', `--out=${out}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 0, log);
    // The CPU-capped group is gone with the run, under either cgroup layout.
    for (const root of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup']) assert.equal(existsSync(join(root, capGroupName(child.pid!))), false, `${root}: the capped group was left behind`);
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as Report;
    const md = readFileSync(join(out, 'latest.md'), 'utf8');
    assert.ok(md.includes('| workload |'));
    // Every uncapped HTTP row beside its logs-on run, with what the log cost.
    assert.match(md, /### Logs off and on\n\n\| workload .*\n\|---.*\n(\| .* \| \d+% \|\n){5}/);

    const ids = report.rows.map((r) => r.id);
    assert.deepEqual(ids, ['m3u8', 'ts', 'ts-capped', 'api', 'https-h1', 'https-h2', 'm3u8-logs', 'ts-logs', 'ts-capped-logs', 'api-logs', 'https-h1-logs', 'https-h2-logs', 'flv-fanout', 'flv-memory', 'flv-ttff', 'flv-latency', 'front-m3u8', 'front-ts', 'flv-front', 'hls', 'll-hls', 'dvr']);
    // The capped rows (logs off and on) run wherever a CPU quota can be set (root, a cgroup cpu
    // controller), and say which; elsewhere they say why they did not run.
    for (const capped of report.rows.filter((r) => r.id.startsWith('ts-capped'))) {
      if (capped.met === null) assert.match(capped.note ?? '', /^not run: /, JSON.stringify(capped));
      else assert.match(capped.method, /each server held to 50% of a core \(cgroup v[12] CFS quota/, capped.method);
    }
    for (const row of report.rows) {
      if (row.id === 'dvr') {
        // CPU added by recording: a difference of two noisy figures (may be below 0); both passes
        // recorded frames' latency, and the recording pass wrote files.
        assert.ok(row.streamgate !== null && Number.isFinite(row.streamgate), `dvr: ${JSON.stringify(row)}\n${log}`);
        assert.match(row.cpu ?? '', /^off \d+\.\d%, on \d+\.\d% of a core; (?!0\.0 )[\d.]+ MB recorded$/, `dvr: ${row.cpu}`);
        assert.match(row.note ?? '', /^latency p99 off [\d.]+ ms, on [\d.]+ ms \(p50 [\d.]+ \/ [\d.]+ ms; [1-9]\d*\/[1-9]\d* frames\)$/, `dvr: ${row.note}`);
        continue;
      }
      // Memory per player is noise at 50 players; HLS is skipped (met null) on a build without it.
      if (row.id === 'flv-memory' || ((row.id === 'hls' || row.id.startsWith('ts-capped')) && row.met === null)) continue;
      if (row.id === 'flv-latency') {
        // Latency beyond the 350 ms window: below zero when the p99 frame waited less than a whole
        // window (players flush on staggered grid points), but a frame never arrives before it is sent.
        assert.ok(row.streamgate !== null && Number.isFinite(row.streamgate) && row.streamgate > -350, `${row.id}: streamgate figure ${row.streamgate}\n${log}`);
      } else {
        assert.ok((row.streamgate ?? 0) > 0, `${row.id}: streamgate figure ${row.streamgate}\n${log}`);
      }
      // HTTP rows carry a note only when a run failed (non-2xx answers, socket errors).
      // Rows with logs on say what the log cost streamgate, and nothing else (every server wrote its log).
      if (row.id.endsWith('-logs')) assert.match(row.note ?? '', /^streamgate with its log on: \d+% of its rate with the log off, median of per-round ratios \(target ≥ 95%\)$/, `${row.id}: ${row.note}`);
      // The ll-hls row is not a wrk row: its note carries its figures (CPU, reloads, memory per held request).
      else if (!row.id.startsWith('flv') && row.id !== 'll-hls') assert.equal(row.note, undefined, `${row.id}: ${row.note}`);
      for (const [peer, v] of Object.entries(row.peers)) assert.ok((v ?? 0) > 0, `${row.id}: ${peer} figure ${v}\n${log}`);
      // HTTP rows say what each request cost the server and how busy the load tool was.
      if (!row.id.startsWith('flv') && row.id !== 'hls' && row.id !== 'll-hls') {
        for (const server of ['streamgate', ...Object.keys(row.peers)]) assert.match(row.cpu ?? '', new RegExp(`${server} [1-9]\\d* µs`), `${row.id}: ${row.cpu}`);
        assert.match(row.cpu ?? '', /load core busy ([1-9]\d*%\/?)+(;|$)/, `${row.id}: ${row.cpu}`);
        // Over TLS every server speaks the same protocol version, or the comparison is not fair.
        if (row.id.startsWith('https')) {
          const versions = [...(row.cpu ?? '').matchAll(/(\S+) (TLSv[\d.]+) /g)].map((m) => [m[1], m[2]]);
          assert.deepEqual(versions.map((v) => v[0]), ['streamgate', ...Object.keys(row.peers)], `${row.id}: ${row.cpu}`);
          assert.deepEqual(new Set(versions.map((v) => v[1])), new Set(['TLSv1.3']), `${row.id}: ${row.cpu}`);
        }
      }
    }
    // Every player of the small fan-out step kept up with the stream, on streamgate and on node-media-server.
    for (const [server, steps] of Object.entries(report.fanout)) {
      assert.ok(steps.length > 0, server);
      assert.equal(steps[0].keptUp, steps[0].players, `${server}: ${JSON.stringify(steps[0])}`);
    }
    assert.deepEqual(Object.keys(report.fanout).sort(), ['node-media-server', 'streamgate']);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
