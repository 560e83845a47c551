/**
 * Which directives exist, where, and how many arguments each takes. Validation and the SRS_*
 * environment overrides are both driven by this one table, so a directive added here is
 * checked and overridable at once; its meaning and default live in schema.ts.
 */
export interface LeafSpec {
  kind: 'leaf';
  min: number;
  max: number;
  /** May appear more than once in its block (each occurrence adds). */
  repeat?: boolean;
}

export interface BlockSpec {
  kind: 'block';
  /** Number of arguments the block header takes (`vhost NAME {`). */
  args: number;
  repeat?: boolean;
  children: Record<string, Spec>;
}

/**
 * SRS directives that streamgate accepts so an SRS config loads, but that have no effect here:
 * each is a `[warn]` line at start and at `-t`. The names SRS accepts inside an ignored block
 * are in srs-compat.ts, so a misspelling there is still an error.
 */
export interface IgnoredSpec {
  kind: 'ignored';
}

export type Spec = LeafSpec | BlockSpec | IgnoredSpec;

const one: LeafSpec = { kind: 'leaf', min: 1, max: 1 };
const many = (max = 16): LeafSpec => ({ kind: 'leaf', min: 1, max });
const repeated = (min: number, max: number): LeafSpec => ({ kind: 'leaf', min, max, repeat: true });
const block = (children: Record<string, Spec>, args = 0, repeat = false): BlockSpec => ({ kind: 'block', args, repeat, children });
const ignored: IgnoredSpec = { kind: 'ignored' };

export const VHOST_SPEC = block(
  {
    enabled: one,
    http_static: block({ enabled: one, mount: one, dir: one }),
    http_remux: block({ enabled: one, mount: one, fast_cache: ignored, drop_if_not_match: ignored, has_audio: ignored, has_video: ignored, guess_has_av: ignored }),
    hls: block({
      enabled: one,
      hls_fragment: one,
      hls_window: one,
      hls_td_ratio: ignored,
      hls_aof_ratio: ignored,
      hls_path: ignored,
      hls_m3u8_file: ignored,
      hls_ts_file: ignored,
      hls_cleanup: ignored,
      hls_dispose: one,
      // streamgate: fMP4 (CMAF) segments, LL-HLS parts and blocking reloads.
      hls_fmp4: one,
      hls_ll: one,
      hls_part: one,
      hls_wait_keyframe: ignored,
      hls_ctx: ignored,
      hls_ts_ctx: ignored,
      // SRS 4–7 options for HLS written to disk (names, keys, fMP4, codecs): no files are written here.
      hls_entry_prefix: ignored,
      hls_on_error: ignored,
      hls_storage: ignored,
      hls_mount: ignored,
      hls_acodec: ignored,
      hls_vcodec: ignored,
      hls_ts_floor: ignored,
      hls_nb_notify: ignored,
      hls_keys: ignored,
      hls_fragments_per_key: ignored,
      hls_key_file: ignored,
      hls_key_file_path: ignored,
      hls_key_url: ignored,
      hls_dts_directly: ignored,
      hls_use_fmp4: ignored,
      hls_fmp4_file: ignored,
      hls_init_file: ignored,
      hls_recover: ignored,
      hls_master_m3u8_path_relative: ignored,
    }),
    /** streamgate: who may publish, and what happens to a second publisher. */
    publish: block({ allow: repeated(1, 32), secret: one, takeover: one, mr: ignored, mr_latency: ignored, firstpkt_timeout: ignored, normal_timeout: ignored, parse_sps: ignored, try_annexb_first: ignored, kickoff_for_idle: ignored }),
    /** wait_publisher (streamgate): how long an RTMP play of a stream not published yet waits for it. */
    play: block({ mw_latency: one, mw_msgs: ignored, gop_cache: one, max_players: one, queue_length: ignored, time_jitter: one, atc: ignored, mix_correct: ignored, wait_publisher: one, atc_auto: ignored, gop_cache_max_frames: ignored, send_min_interval: ignored, reduce_sequence_header: ignored }),
    /**
     * streamgate: pull streams from an HTTP-FLV origin when nobody publishes them here;
     * proxy_hls on: the origin's HLS files (.m3u8, .ts) are proxied to it (a front, as NGINX's layout).
     */
    edge: block({ origin: one, idle_timeout: one, connect_timeout: one, proxy_hls: one }),
    min_latency: ignored,
    tcp_nodelay: ignored,
    chunk_size: ignored,
    cluster: ignored,
    /** SRS dvr (src/record/): record streams to FLV or MP4 files; dvr_max_age/dvr_max_bytes are streamgate's. */
    dvr: block({ enabled: one, dvr_apply: many(64), dvr_plan: one, dvr_path: one, dvr_duration: one, dvr_wait_keyframe: one, time_jitter: one, dvr_max_age: one, dvr_max_bytes: one }),
    rtc: ignored,
    /** SRS http_hooks: every URL of an event is POSTed to in order (src/auth/hooks.ts). */
    http_hooks: block({
      enabled: one,
      on_connect: many(8),
      on_close: many(8),
      on_publish: many(8),
      on_unpublish: many(8),
      on_play: many(8),
      on_stop: many(8),
      on_hls: many(8),
      on_dvr: many(8),
      on_hls_notify: ignored,
      /** streamgate: how long a hook may take to answer before it counts as a deny. */
      hooks_timeout: one,
    }),
    /** SRS security: `allow|deny publish|play all|IP|CIDR;` (src/auth/security.ts). */
    security: block({ enabled: one, allow: repeated(2, 2), deny: repeated(2, 2) }),
    /** streamgate: signed tokens (JWT) for publish and/or play (src/auth/token.ts). */
    token: block({ enabled: one, require: many(2), secret: one, jwks: one }),
    transcode: ignored,
    exec: ignored,
    ingest: ignored,
    forward: ignored,
    refer: ignored,
    bandcheck: ignored,
    hds: ignored,
    dash: ignored,
    srt: ignored,
    rtmp_to_rtc: ignored,
    rtsp: ignored,
    in_ack_size: ignored,
    out_ack_size: ignored,
    // SRS 1–3 names that SRS still rewrites into the blocks above when it loads an old config.
    mode: ignored,
    origin: ignored,
    token_traverse: ignored,
    time_jitter: ignored,
    mix_correct: ignored,
    atc: ignored,
    atc_auto: ignored,
    gop_cache: ignored,
    queue_length: ignored,
    send_min_interval: ignored,
    reduce_sequence_header: ignored,
    mw_latency: ignored,
    mr: ignored,
    debug_srs_upnode: ignored,
    publish_1stpkt_timeout: ignored,
    publish_normal_timeout: ignored,
    refer_publish: ignored,
    refer_play: ignored,
    http: ignored,
  },
  1,
  true,
);

export const ROOT_SPEC = block({
  listen: many(8),
  max_connections: one,
  /** SRS 7's home for the RTMP port; the top-level `listen` wins when both are given. */
  rtmp: block({ listen: many(8), chunk_size: ignored }),
  chunk_size: ignored,
  http_api: block({ enabled: one, listen: many(8), crossdomain: ignored, raw_api: ignored, auth: block({ enabled: one, username: one, password: one }), https: ignored }),
  http_server: block({
    enabled: one,
    listen: many(8),
    dir: one,
    crossdomain: one,
    /** streamgate: plain-HTTP requests get a 301 to HTTPS (not ACME challenges, live streams, loopback). */
    https_redirect: one,
    https: block({
      enabled: one,
      listen: many(8),
      key: one,
      cert: one,
      own_h2: one,
      /** streamgate: certificates from an ACME CA (RFC 8555), obtained and renewed in the process. */
      acme: block({ enabled: one, domains: many(100), email: one, directory: one, ca_cert: one, dir: one }),
    }),
  }),
  /** streamgate: reverse-proxy routes, httpx-static style `route PREFIX UPSTREAM [host=…];`. */
  proxy: block({ route: repeated(2, 3), timeout: one, connect_timeout: one, keepalive: one }),
  /** streamgate: where the shipped pages live; `off` removes the route. */
  console_dir: one,
  players_dir: one,
  /** streamgate: `combined` (default), `json` or `off`, then NGINX's [PATH] [buffer=SIZE] [flush=TIME]. */
  access_log: many(4),
  /** streamgate: resource bounds, each documented in config/streamgate.conf. */
  limits: block({
    max_streams: one,
    max_players: one,
    header_timeout: one,
    request_timeout: one,
    keepalive_timeout: one,
    max_header_size: one,
    max_url_length: one,
    max_api_body: one,
    shutdown_timeout: one,
    unauthorized_memory: one,
    connection_memory: one,
    max_connections_per_ip: one,
    // streamgate: LL-HLS blocking reloads and preload hints held at once.
    hls_held_requests: one,
  }),
  vhost: VHOST_SPEC,
  daemon: ignored,
  pid: ignored,
  srs_log_tank: ignored,
  srs_log_level: ignored,
  srs_log_level_v2: ignored,
  srs_log_file: ignored,
  ff_log_dir: ignored,
  ff_log_level: ignored,
  utc_time: ignored,
  work_dir: ignored,
  asprocess: ignored,
  empty_ip_ok: ignored,
  grace_start_wait: ignored,
  grace_final_wait: ignored,
  force_grace_quit: ignored,
  disable_daemon_for_docker: ignored,
  inotify_auto_reload: ignored,
  auto_reload_for_docker: ignored,
  query_latest_version: ignored,
  circuit_breaker: ignored,
  tencentcloud_cls: ignored,
  tencentcloud_apm: ignored,
  exporter: ignored,
  heartbeat: ignored,
  stats: ignored,
  rtc_server: ignored,
  srt_server: ignored,
  stream_caster: ignored,
  // SRS 4–7 root directives about its own process, logs and other protocols.
  pithy_print_ms: ignored,
  server_id: ignored,
  tcmalloc_release_rate: ignored,
  is_full: ignored,
  in_docker: ignored,
  first_wait_for_qlv: ignored,
  threads: ignored,
  rtsp_server: ignored,
  rtmps: ignored,
  http_stream: ignored,
});
