import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigText } from '../../../src/config/index.js';
import { Gateway } from '../../../src/gateway.js';
import { memoryLogger } from '../../../src/log.js';

/**
 * An operator moves an SRS config over: every directive SRS 7 documents (and the SRS 4–6 names
 * still in deployed files) loads, each one without effect is a warning, and only a misspelling
 * is an error with file:line.
 */

const CLI = fileURLToPath(new URL('../../../src/cli.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

/** The shape of SRS 7's full.conf, condensed: one of each block with the names it documents. */
const SRS7 = `
listen 127.0.0.1:0;
pid ./objs/srs.pid;
chunk_size 60000;
ff_log_dir ./objs;
ff_log_level info;
srs_log_tank console;
srs_log_level_v2 info;
srs_log_file ./objs/srs.log;
max_connections 1000;
daemon off;
utc_time off;
work_dir ./;
asprocess off;
empty_ip_ok on;
grace_start_wait 2300;
grace_final_wait 3200;
force_grace_quit off;
disable_daemon_for_docker on;
inotify_auto_reload off;
auto_reload_for_docker on;
tcmalloc_release_rate 0.8;
query_latest_version on;
first_wait_for_qlv 30;
in_docker on;
is_full on;
server_id srs-abc;
pithy_print_ms 10000;
rtmp { listen 127.0.0.1:0; chunk_size 60000; }
rtmps { enabled off; listen 1443; key ./conf/server.key; cert ./conf/server.crt; }
http_api { enabled on; listen 127.0.0.1:0; crossdomain on; raw_api { enabled off; allow_reload off; allow_query off; allow_update off; } }
http_server { enabled on; listen 127.0.0.1:0; dir ./public; crossdomain on; }
srt_server { enabled off; listen 10080; maxbw 1000000000; mss 1500; connect_timeout 4000; peer_idle_timeout 8000; default_app live; peerlatency 0; recvlatency 0; latency 0; tsbpdmode off; tlpktdrop off; sendbuf 2000000; recvbuf 2000000; }
rtc_server { enabled off; listen 8000; tcp { enabled off; listen 8000; } protocol udp; candidate *; ip_family ipv4; ecdsa on; encrypt on; reuseport 1; merge_nalus off; black_hole { enabled off; addr 127.0.0.1:10000; } }
rtsp_server { enabled off; listen 554; }
stream_caster { enabled off; caster gb28181; output rtmp://127.0.0.1/live/[stream]; listen 9000; sip { enabled on; listen 5060; timeout 60; reinvite 5; candidate *; } }
exporter { enabled off; listen 9972; label cn-beijing; tag cn-edge; }
heartbeat { enabled off; interval 9.3; url http://127.0.0.1:8085/api/v1/servers; device_id "my-srs-device"; summaries off; ports off; }
stats { enabled on; network 0; disk sda sdb; }
circuit_breaker { enabled on; high_threshold 90; high_pulse 2; critical_threshold 95; critical_pulse 1; dying_threshold 99; dying_pulse 5; }
tencentcloud_cls { enabled off; secret_id x; secret_key y; endpoint ap-guangzhou.cls.tencentcs.com; topic_id t; }
tencentcloud_apm { enabled off; team apm-x; token t; endpoint ap-guangzhou.apm.tencentcs.com:4317; service_name srs-server; }
vhost __defaultVhost__ {
  enabled on; min_latency off; tcp_nodelay off; chunk_size 60000; in_ack_size 0; out_ack_size 2500000;
  hls { enabled on; hls_fragment 2; hls_window 12; hls_dispose 60; hls_td_ratio 1.5; hls_aof_ratio 2.1; hls_path ./objs/nginx/html;
        hls_m3u8_file [app]/[stream].m3u8; hls_ts_file [app]/[stream]-[seq].ts; hls_ts_floor off; hls_entry_prefix http://x;
        hls_acodec aac; hls_vcodec h264; hls_cleanup on; hls_wait_keyframe on; hls_keys off; hls_fragments_per_key 5;
        hls_key_file [app]/[stream]-[seq].key; hls_key_file_path ./k; hls_key_url http://x; hls_dts_directly on; hls_ctx on;
        hls_ts_ctx on; hls_use_fmp4 off; hls_fmp4_file [app]/[stream]-[seq].m4s; hls_init_file [app]/[stream]/init.mp4;
        hls_recover on; hls_master_m3u8_path_relative off; hls_nb_notify 64; hls_on_error continue; }
  http_remux { enabled on; mount [vhost]/[app]/[stream].flv; fast_cache 30; drop_if_not_match off; has_audio on; has_video on; guess_has_av on; }
  http_static { enabled off; mount [vhost]/hls; dir ./objs/nginx/html; }
  play { gop_cache on; gop_cache_max_frames 2500; queue_length 10; time_jitter full; atc off; atc_auto off; mix_correct off;
         mw_latency 350; mw_msgs 8; send_min_interval 10.0; reduce_sequence_header on; }
  publish { mr off; mr_latency 350; firstpkt_timeout 20000; normal_timeout 7000; parse_sps on; try_annexb_first on; kickoff_for_idle 0; }
  cluster { mode local; origin 127.0.0.1:19350; token_traverse off; vhost x; debug_srs_upnode on; coworkers 127.0.0.1:9091; origin_cluster off; protocol rtmp; follow_client off; }
  dvr { enabled off; dvr_apply all; dvr_plan session; dvr_path ./objs/nginx/html/[app]/[stream].[timestamp].flv; dvr_duration 30; dvr_wait_keyframe on; time_jitter full; }
  refer { enabled off; all a.com; publish a.com; play a.com; }
  exec { enabled off; publish ./objs/ffmpeg/bin/ffmpeg -f flv -i [url] -c copy -y ./[stream].flv; }
  ingest livestream { enabled off; input { type file; url ./doc/source.flv; } ffmpeg ./objs/ffmpeg/bin/ffmpeg; engine { enabled off; output rtmp://127.0.0.1:[port]/live/livestream; } }
  transcode { enabled off; ffmpeg ./objs/ffmpeg/bin/ffmpeg; engine example { enabled on; iformat flv; vfilter { v quiet; } vcodec libx264; vbitrate 1500; vfps 25; vwidth 768; vheight 320; vthreads 12; vprofile main; vpreset medium; vparams { t 100; } acodec libfdk_aac; abitrate 70; asample_rate 44100; achannels 2; aparams { profile:a aac_low; } oformat flv; output rtmp://127.0.0.1:[port]/[app]/[stream]_[engine]; } }
  forward { enabled off; destination 127.0.0.1:19350; backend http://127.0.0.1:8085/api/v1/forward; }
  dash { enabled off; dash_fragment 30; dash_update_period 150; dash_timeshift 300; dash_path ./objs/nginx/html; dash_mpd_file [app]/[stream].mpd; dash_window_size 5; dash_cleanup on; dash_dispose 120; }
  rtc { enabled off; rtmp_to_rtc off; rtc_to_rtmp off; nack on; nack_no_copy on; twcc on; stun_timeout 30; stun_strict_check off; dtls_role passive; dtls_version auto; drop_for_pt 0; pli_for_rtmp 6.0; keep_bframe off; opus_bitrate 48000; aac_bitrate 48000; keep_avc_nalu_sei on; init_rate_from_sdp off; }
  srt { enabled off; srt_to_rtmp on; }
  rtsp { enabled off; rtmp_to_rtsp on; }
  hds { enabled off; hds_fragment 10; hds_window 60; hds_path ./objs/nginx/html; }
  bandcheck { enabled off; key "35c9b402c12a7246868752e2878f7e0e"; interval 30; limit_kbps 4000; }
}
`;

describe('SRS configs load', () => {
  test('every directive of SRS 7\'s full.conf (condensed) loads; the RTMP port comes from rtmp { listen; } too', () => {
    const c = loadConfigText(SRS7, 'srs.conf');
    assert.equal(c.rtmp.listen[0].port, 0);
    const seven = loadConfigText('rtmp { listen 127.0.0.1:19350; }', 'x.conf');
    assert.deepEqual(seven.rtmp.listen, [{ host: '127.0.0.1', port: 19350 }], 'SRS 7 keeps the RTMP port in rtmp { listen; }');
    const both = loadConfigText('listen 1936; rtmp { listen 19350; }', 'x.conf');
    assert.equal(both.rtmp.listen[0].port, 1936, 'the top-level listen wins');
  });

  test('SRS 4–6 names still found in deployed configs load with a warning each', () => {
    const c = loadConfigText('in_docker on;\nfirst_wait_for_qlv 30;\nthreads 1;\nvhost v { mw_latency 350; gop_cache off; }', 'old.conf');
    for (const [line, name] of [[1, 'in_docker'], [2, 'first_wait_for_qlv'], [3, 'threads'], [4, 'mw_latency'], [4, 'gop_cache']] as const) {
      assert.ok(c.warnings.includes(`old.conf:${line}: "${name}" is accepted for SRS compatibility and has no effect in streamgate`), c.warnings.join('\n'));
    }
  });

  test('a block that is off warns nothing: explicit `enabled off;`, or no enabled where SRS defaults to off', () => {
    const c = loadConfigText(`vhost v {
      dvr { enabled off; dvr_path ./x; }
      transcode { ffmpeg ./ffmpeg; engine e { vcodec libx264; } }
      hls { enabled off; hls_path ./objs; hls_fragment 2; }
    }
    heartbeat { interval 9.3; }
    vhost w { forward { enabled on; destination 127.0.0.1:19350; } }`, 'x.conf');
    assert.deepEqual(c.warnings, ['x.conf:7: "forward" is accepted for SRS compatibility and has no effect in streamgate']);
  });

  test('misspellings are errors with file:line, inside ignored SRS blocks too', () => {
    const cases: [string, string][] = [
      ['vhost v {\n  dvr { enabled on;\n dvr_pth ./x; } }', 'x.conf:3: unknown directive "dvr_pth" in dvr'],
      ['vhost v { transcode { engine e {\n vcodecc libx264; } } }', 'x.conf:2: unknown directive "vcodecc" in engine'],
      ['in_dokcer on;', 'x.conf:1: unknown directive "in_dokcer" at top level'],
      ['heartbeat {\n enabled off;\n intervall 9; }', 'x.conf:3: unknown directive "intervall" in heartbeat'],
      ['vhost v { hls { hls_fargment 2; } }', 'x.conf:1: unknown directive "hls_fargment" in hls'],
    ];
    for (const [text, message] of cases) assert.throws(() => loadConfigText(text, 'x.conf'), { message });
  });
});

describe('warnings reach the operator', () => {
  test('-t prints [warn] lines for directives without effect and a missing http_server.dir, and still passes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-warn-'));
    const file = join(dir, 'x.conf');
    writeFileSync(file, 'in_docker on;\nhttp_server { dir ./no-such-dir; }\n');
    const r = spawnSync(process.execPath, [CLI, '-t', '-c', file], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`streamgate: \\[warn\\] ${file}:1: "in_docker" is accepted for SRS compatibility`));
    assert.match(r.stdout, /streamgate: \[warn\] http_server.dir .\/no-such-dir: does not exist/);
    assert.match(r.stdout, /syntax is ok/);
  });

  test('at start the [warn] lines come before the listening lines', async () => {
    const { log, lines } = memoryLogger();
    const gw = await Gateway.start(loadConfigText(`listen off; in_docker on;
      http_server { listen 127.0.0.1:0; dir ./no-such-dir; https { enabled off; } }`, 'x.conf'), { log });
    try {
      const firstListen = lines.findIndex((l) => l.includes('listening on'));
      const warnDocker = lines.findIndex((l) => /\[warn\] config: x.conf:1: "in_docker"/.test(l));
      const warnDir = lines.findIndex((l) => /\[warn\] config: http_server.dir .\/no-such-dir: does not exist/.test(l));
      assert.ok(firstListen > 0 && warnDocker >= 0 && warnDir >= 0, lines.join('\n'));
      assert.ok(warnDocker < firstListen && warnDir < firstListen, lines.join('\n'));
    } finally {
      await gw.close();
    }
  });

  test('the shipped configs load without a warning', () => {
    for (const f of ['streamgate.conf', 'production.conf', 'srs-front.conf']) {
      const r = spawnSync(process.execPath, [CLI, '-t', '-c', join(REPO, 'config', f)], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /\[warn\]/, `${f}: ${r.stdout}`);
    }
  });
});
