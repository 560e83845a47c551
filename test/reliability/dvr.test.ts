import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { QueuedFile } from '../../src/record/writer.js';
import { publish, run, waitFor } from '../helpers/ffmpeg.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { CliGateway, sleep } from '../helpers/proc.js';

/**
 * Recording must never cost the live stream: a full disk or a directory that cannot be written
 * stops the recording with one log line while a player keeps watching, and recording resumes by
 * itself; the write queue has a bound; retention deletes the oldest finished files by age and by
 * bytes and nothing else.
 */

const dirs: string[] = [];
const mounts: string[] = [];
after(() => {
  for (const m of mounts) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sg-dvr-rel-'));
  dirs.push(d);
  return d;
}

async function startGateway(dvr: string): Promise<{ gw: Gateway; lines: string[] }> {
  const { log, lines } = memoryLogger();
  const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost __defaultVhost__ { play { mw_latency 50ms; } dvr { enabled on; ${dvr} } }`;
  const gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
  return { gw, lines };
}

/** The longest time between two packets the player received, and the media time it reached (ms). */
function watched(p: FlvPlayer): { gapMs: number; reachedMs: number } {
  let gapMs = 0;
  for (let i = 1; i < p.packets.length; i++) gapMs = Math.max(gapMs, p.packets[i].at - p.packets[i - 1].at);
  const media = p.packets.filter((x) => x.pkt.kind !== 'script');
  return { gapMs, reachedMs: media.length > 0 ? media[media.length - 1].pkt.dts - media[0].pkt.dts : 0 };
}

describe('dvr: the disk fails, the stream does not', () => {
  test('ENOSPC on a small tmpfs: one log line, the player never stalls, recording resumes once there is room', async (t) => {
    const dir = tempDir();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir]);
    } catch (err) {
      t.skip(`cannot mount a tmpfs here (needs root): ${(err as Error).message}`);
      return;
    }
    mounts.push(dir);
    const { gw, lines } = await startGateway(`dvr_plan session; dvr_path ${dir}/[stream].[timestamp].flv;`);
    try {
      // About 106 kB/s: the 512 kB tmpfs is full after about 5 s of this 11 s publish.
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/full`, { seconds: 11 });
      await waitFor('the stream', () => gw.hub.all().length > 0, 10_000);
      const player = new FlvPlayer(gw.port('http'), '/live/full.flv');
      const stopped = await waitFor('the stop line', () => lines.find((l) => l.includes('dvr: recording live/full stopped')), 15_000);
      assert.match(stopped, /ENOSPC/);
      // Room again: the operator (or retention) deletes the full file.
      await waitFor('the full file is finished', () => readdirSync(dir).some((f) => f.endsWith('.flv')), 5000);
      for (const f of readdirSync(dir)) if (f.endsWith('.flv')) rmSync(join(dir, f));
      await waitFor('the resume line', () => lines.find((l) => l.includes('dvr: recording live/full resumed')), 10_000);
      assert.equal(await pub.exited, 0, pub.stderr());
      await player.done;
      const w = watched(player);
      assert.ok(w.gapMs < 1500, `the player got packets throughout (longest gap ${w.gapMs} ms)`);
      assert.ok(w.reachedMs >= 10_500, `the player saw the whole publish (${w.reachedMs} ms of media)`);
      assert.equal(lines.filter((l) => l.includes('stopped')).length, 1, lines.join('\n'));
      const [file] = await waitFor('the resumed file', () => {
        const f = readdirSync(dir).filter((x) => x.endsWith('.flv'));
        return f.length === 1 && f;
      }, 10_000);
      const p = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', join(dir, file), '-f', 'null', '-']);
      assert.equal(await p.exited, 0);
      assert.equal(p.stderr(), '', 'the resumed recording decodes cleanly');
    } finally {
      await gw.close();
    }
  });

  test('a directory that cannot be made: one log line, recording starts by itself once it can', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'blocked'), 'a file where the directory should be');
    const { gw, lines } = await startGateway(`dvr_plan session; dvr_path ${dir}/blocked/[stream].flv;`);
    try {
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/nodir`, { seconds: 6 });
      const stopped = await waitFor('the stop line', () => lines.find((l) => l.includes('dvr: recording live/nodir stopped')), 10_000);
      assert.match(stopped, /ENOTDIR|EEXIST/);
      rmSync(join(dir, 'blocked'));
      await waitFor('the resume line', () => lines.find((l) => l.includes('resumed')), 8000);
      assert.equal(await pub.exited, 0, pub.stderr());
      await waitFor('the file', () => existsSync(join(dir, 'blocked', 'nodir.flv')), 5000);
      assert.equal(lines.filter((l) => l.includes('stopped')).length, 1, lines.join('\n'));
    } finally {
      await gw.close();
    }
  });

  test('the write queue is bounded: past it a write is refused, not held', async () => {
    const dir = tempDir();
    const errors: string[] = [];
    const f = new QueuedFile(join(dir, 'q.flv.tmp'), (e) => errors.push(String(e.code)), 64 * 1024);
    const chunk = Buffer.alloc(16 * 1024);
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (f.write(chunk)) accepted++;
    assert.ok(accepted <= 4, `at most 64 KiB queued at once (${accepted} chunks of 16 KiB accepted)`);
    assert.ok(f.queued <= 64 * 1024);
    await f.close(join(dir, 'q.flv'));
    assert.deepEqual(errors, []);
    assert.equal(readdirSync(dir).join(), 'q.flv');
  });
});

describe('dvr: a crash mid-recording', () => {
  test('SIGKILL 20 s into an MP4 recording: its VOD playlist grows meanwhile; the file, and its VOD after the restart, play to within one fragment of the kill', async () => {
    // A fragment is a GOP (1 s here) however long the recording has run.
    const dir = tempDir();
    const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { dvr { enabled on; dvr_path ${dir}/[app]/[stream].mp4; } }`;
    const gw = new CliGateway(conf, dir);
    const pub = publish(`rtmp://127.0.0.1:${await gw.port('rtmp')}/live/crash`, { seconds: 40, gop: 25 });
    let killedAfterS = 0;
    try {
      await gw.waitLine(/publish live\/crash/, 15_000);
      const from = Date.now();
      await sleep(10_000);
      // Half way: the recording in progress is an EVENT playlist of its whole fragments so far (a player reloads it).
      const growing = await (await fetch(`http://127.0.0.1:${await gw.port('http')}/recordings/live/crash.m3u8`)).text();
      assert.match(growing, /#EXT-X-PLAYLIST-TYPE:EVENT\n/);
      assert.ok(!growing.includes('#EXT-X-ENDLIST'), growing);
      const listed = growing.match(/#EXTINF:([\d.]+)/g)!.map((l) => Number(l.slice(8))).reduce((a, b) => a + b, 0);
      assert.ok(listed >= 10 - 1.6 - 4 && listed <= 10.5, `${listed} s listed 10 s in (up to one 4 s segment behind)`);
      await sleep(from + 20_000 - Date.now());
      gw.kill();
      killedAfterS = (Date.now() - from) / 1000;
      await gw.exited;
    } finally {
      gw.kill();
      pub.kill();
    }
    const tmp = join(dir, 'live', 'crash.mp4.tmp');
    assert.ok(existsSync(tmp), 'the file being written is where it was');
    const p = run('ffprobe', ['-v', 'error', '-show_entries', 'packet=pts_time,duration_time', '-select_streams', 'v', '-of', 'csv=p=0', '-f', 'mp4', tmp]);
    assert.equal(await p.exited, 0, p.stderr());
    assert.equal(p.stderr(), '', 'what reached the disk reads without an error');
    const ends = p.stdout().toString().trim().split('\n').map((l) => l.split(',').map(Number)).map(([t, d]) => t + (d || 0));
    const playable = Math.max(...ends);
    // One fragment (1 s GOP) plus the merged-write window and the encoder's start-up.
    assert.ok(playable >= killedAfterS - 1.6, `plays to ${playable} s of the ${killedAfterS.toFixed(1)} s recorded before the kill`);
    const again = new CliGateway(conf, dir);
    try {
      await again.waitLine(/dvr: recovered .*crash\.mp4/, 15_000);
      assert.ok(existsSync(join(dir, 'live', 'crash.mp4')) && !existsSync(tmp), 'the next start renames it to the recording it was');
      // Its VOD: finished now, and as long as the file (to within one 4 s segment: the last fragments make up a short one).
      const vod = `http://127.0.0.1:${await again.port('http')}/recordings/live/crash.m3u8`;
      const text = await (await fetch(vod)).text();
      assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD\n/);
      assert.ok(text.endsWith('#EXT-X-ENDLIST\n'), text);
      const v = run('ffprobe', ['-v', 'error', '-show_entries', 'packet=pts_time,duration_time', '-select_streams', 'v', '-of', 'csv=p=0', vod]);
      assert.equal(await v.exited, 0, v.stderr());
      const vodEnd = Math.max(...v.stdout().toString().trim().split('\n').map((l) => l.split(',').map(Number)).map(([t, d]) => t + (d || 0)));
      assert.ok(Math.abs(vodEnd - playable) <= 0.1, `the VOD plays to ${vodEnd} s, the file to ${playable} s`);
    } finally {
      again.kill();
      await again.exited;
    }
  });
});

describe('dvr: retention', () => {
  function file(path: string, bytes: number, ageS: number): void {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, Buffer.alloc(bytes));
    const t = Date.now() / 1000 - ageS;
    utimesSync(path, t, t);
  }

  test('by age: finished recordings older than dvr_max_age go, newer ones and files the template could not have made stay', async () => {
    const dir = tempDir();
    file(join(dir, 'live/a/1000.flv'), 1000, 3 * 3600);
    file(join(dir, 'live/a/2000.flv'), 1000, 600);
    file(join(dir, 'live/b/3000.mp4'), 1000, 3 * 3600);
    file(join(dir, 'live/notes.flv'), 1000, 3 * 3600);
    file(join(dir, 'live/a/readme.txt'), 1000, 3 * 3600);
    const { gw, lines } = await startGateway(`dvr_path ${dir}/[app]/[stream]/[timestamp].flv; dvr_max_age 1h;`);
    try {
      await waitFor('retention', () => !existsSync(join(dir, 'live/a/1000.flv')), 5000);
      assert.ok(existsSync(join(dir, 'live/a/2000.flv')), 'a recent recording stays');
      assert.ok(existsSync(join(dir, 'live/b/3000.mp4')), 'another container than the template\'s stays');
      assert.ok(existsSync(join(dir, 'live/notes.flv')), 'a file outside the template\'s shape stays');
      assert.ok(existsSync(join(dir, 'live/a/readme.txt')));
      assert.equal(lines.filter((l) => l.includes('retention deleted')).length, 1, lines.join('\n'));
      const r = await fetch(`http://127.0.0.1:${gw.port('http')}/api/v1/recordings?stream=a`);
      const list = ((await r.json()) as { recordings: { file: string; bytes: number }[] }).recordings;
      assert.deepEqual(list.map((x) => [x.file, x.bytes]), [[join(dir, 'live/a/2000.flv'), 1000]], 'the API lists what is on disk');
    } finally {
      await gw.close();
    }
  });

  test('by bytes: the oldest finished recordings go until the rest fit dvr_max_bytes; a .tmp left by a crash is recovered, not deleted', async () => {
    const dir = tempDir();
    for (let i = 1; i <= 5; i++) file(join(dir, `live/s/${i}000.flv`), 100 * 1024, 600 - i * 60);
    file(join(dir, 'live/s/9000.flv.tmp'), 10 * 1024, 5);
    const { gw, lines } = await startGateway(`dvr_path ${dir}/[app]/[stream]/[timestamp].flv; dvr_max_bytes 320k;`);
    try {
      await waitFor('retention', () => !existsSync(join(dir, 'live/s/2000.flv')), 5000);
      assert.deepEqual(readdirSync(join(dir, 'live/s')).sort(), ['3000.flv', '4000.flv', '5000.flv', '9000.flv']);
      assert.ok(lines.some((l) => l.includes('recovered')), lines.join('\n'));
    } finally {
      await gw.close();
    }
  });
});
