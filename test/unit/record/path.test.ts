import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../../src/config/index.js';
import { containerOf, expandPath, pathPattern } from '../../../src/record/path.js';
import { victims, type FoundFile } from '../../../src/record/retention.js';

const name = { vhost: '__defaultVhost__', app: 'live', stream: 'livestream' };

describe('dvr_path', () => {
  test('SRS\'s variables, as its full.conf example: 2015-01-03 10:57:30.776', () => {
    const at = new Date(2015, 0, 3, 10, 57, 30, 776);
    assert.equal(expandPath('/data/[vhost]/[app]/[stream]/[2006]/[01]/[02]/[15].[04].[05].[999].flv', name, at),
      '/data/__defaultVhost__/live/livestream/2015/01/03/10.57.30.776.flv');
    assert.equal(expandPath('./x/[app]/[stream].[timestamp].mp4', name, at), `./x/live/livestream.${at.getTime()}.mp4`);
    assert.equal(containerOf('./x/[stream].mp4'), 'mp4');
    assert.equal(containerOf('./x/[stream].flv'), 'flv');
  });

  test('a stream name cannot climb out of the tree', () => {
    const at = new Date(0);
    assert.equal(expandPath('/d/[app]/[stream].flv', { vhost: 'v', app: '..', stream: '../../etc/x' }, at), '/d/_/.._.._etc_x.flv');
  });

  test('retention touches only what the template could have made, below the directory before its first variable', () => {
    const p = pathPattern('/data/dvr/[app]/[stream]/[2006]-[01]-[02]/[15].[04].flv');
    assert.equal(p.root, '/data/dvr');
    assert.deepEqual(p.matches('/data/dvr/live/s1/2026-12-06/05.30.flv'), { app: 'live', stream: 's1' });
    for (const other of ['/data/dvr/live/s1/2026-12-06/05.30.mp4', '/data/dvr/live/s1/index.flv', '/data/dvr/live/2026-12-06/05.30.flv', '/data/other/live/s1/2026-12-06/05.30.flv', '/data/dvr/../dvr2/a/b/2026-12-06/05.30.flv']) {
      assert.equal(p.matches(other), null, other);
    }
    assert.equal(pathPattern('./objs/nginx/html/[app]/[stream].[timestamp].flv').root, './objs/nginx/html');
    assert.equal(pathPattern('/rec/[stream].flv').root, '/rec');
  });

  test('victims: every file past the age, then the oldest while over the bytes; files being written are counted, never chosen', () => {
    const f = (path: string, bytes: number, ageS: number, partial = false): FoundFile => ({ path, bytes, mtimeMs: 1e12 - ageS * 1000, partial, vars: {} });
    const files = [f('new', 100, 10), f('old', 100, 7200), f('mid', 100, 600), f('writing', 100, 99_999, true)];
    assert.deepEqual(victims(files, 3_600_000, 0, 1e12).map((x) => x.path), ['old']);
    assert.deepEqual(victims(files, 0, 250, 1e12).map((x) => x.path), ['old', 'mid']);
    assert.deepEqual(victims(files, 0, 0, 1e12), []);
  });
});

describe('the dvr block', () => {
  const dvr = (body: string, env: NodeJS.ProcessEnv = {}) => loadConfigText(`vhost __defaultVhost__ { dvr { ${body} } }`, 'x.conf', env).vhosts[0].dvr;

  test('SRS\'s defaults; streamgate\'s retention off', () => {
    assert.deepEqual(dvr(''), {
      enabled: false, apply: 'all', plan: 'session', path: './objs/nginx/html/[app]/[stream].[timestamp].flv', durationMs: 30_000,
      waitKeyframe: true, timeJitter: 'full', maxAgeMs: 0, maxBytes: 0,
    });
  });

  test('values, SRS 1\'s directory-only path, units for retention, the env override', () => {
    const d = dvr('enabled on; dvr_apply live/a live/b; dvr_plan segment; dvr_path /rec/; dvr_duration 10; dvr_wait_keyframe off; time_jitter zero; dvr_max_age 7d; dvr_max_bytes 2g;');
    assert.deepEqual(d, { enabled: true, apply: ['live/a', 'live/b'], plan: 'segment', path: '/rec/[app]/[stream].[timestamp].flv', durationMs: 10_000,
      waitKeyframe: false, timeJitter: 'zero', maxAgeMs: 7 * 86_400_000, maxBytes: 2 * 1024 ** 3 });
    assert.equal(dvr('', { SRS_VHOST_DVR_ENABLED: 'on' }).enabled, true);
    assert.equal(dvr('dvr_max_age 90m;').maxAgeMs, 90 * 60_000);
  });

  test('errors name the line: SRS 2\'s append plan, a bad apply, a bad age, a misspelling', () => {
    assert.throws(() => dvr('dvr_plan append;'), /x\.conf:1: "dvr_plan" expects session or segment, got "append"/);
    assert.throws(() => dvr('dvr_apply live;'), /"dvr_apply" expects all or app\/stream names/);
    assert.throws(() => dvr('dvr_max_age 7w;'), /"dvr_max_age" expects an age/);
    assert.throws(() => dvr('dvr_duration 0;'), /at least 1 second/);
    assert.throws(() => dvr('dvr_pth ./x;'), /unknown directive "dvr_pth" in dvr/);
  });
});
