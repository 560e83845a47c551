/**
 * What SRS (4 to 7) accepts inside the blocks streamgate ignores, so that a block copied from an
 * SRS config loads with one warning while a misspelled name inside it is still an error, as SRS
 * itself makes it ("illegal vhost.dvr.dvr_pth"). Names from SRS 7's config checker and full.conf,
 * and the SRS 4–6 names still found in deployed configs.
 *
 * `offByDefault`: SRS runs the feature only with `enabled on;`, so a block without it (or with
 * `enabled off;`) does nothing in SRS either and gets no warning here. A block streamgate makes real
 * moves to spec.ts and its entry here is simply no longer consulted.
 */
export interface SrsBlock {
  children: readonly string[];
  offByDefault: boolean;
  /** Blocks inside this one, by name, checked the same way. */
  nested?: Record<string, SrsBlock>;
}

const off = (children: string[], nested?: Record<string, SrsBlock>): SrsBlock => ({ children, offByDefault: true, nested });
const always = (children: string[], nested?: Record<string, SrsBlock>): SrsBlock => ({ children, offByDefault: false, nested });

const ENGINE = off(['enabled', 'vfilter', 'vcodec', 'vbitrate', 'vfps', 'vwidth', 'vheight', 'vthreads', 'vprofile', 'vpreset', 'vparams',
  'acodec', 'abitrate', 'asample_rate', 'achannels', 'aparams', 'output', 'perfile', 'iformat', 'oformat']);

/** Keyed by the block's path: `heartbeat`, `vhost.dvr`, `http_api.raw_api`. */
export const SRS_BLOCKS: Record<string, SrsBlock> = {
  heartbeat: off(['enabled', 'interval', 'url', 'device_id', 'summaries', 'ports']),
  stats: always(['enabled', 'network', 'disk']),
  srt_server: off(['enabled', 'listen', 'maxbw', 'mss', 'latency', 'recvlatency', 'peerlatency', 'connect_timeout', 'peer_idle_timeout',
    'sendbuf', 'recvbuf', 'payloadsize', 'default_app', 'sei_filter', 'mix_correct', 'tlpktdrop', 'tsbpdmode', 'passphrase', 'pbkeylen', 'default_streamid']),
  rtc_server: off(['enabled', 'listen', 'dir', 'candidate', 'ecdsa', 'tcp', 'encrypt', 'reuseport', 'merge_nalus', 'black_hole', 'protocol',
    'ip_family', 'api_as_candidates', 'resolve_api_domain', 'keep_api_domain', 'use_auto_detect_network_ip']),
  rtsp_server: off(['enabled', 'listen']),
  rtmps: off(['enabled', 'listen', 'key', 'cert']),
  exporter: off(['enabled', 'listen', 'label', 'tag']),
  stream_caster: off(['enabled', 'caster', 'output', 'listen', 'sip', 'rtp_port_min', 'rtp_port_max', 'host', 'audio_enable', 'wait_keyframe', 'jitterbuffer_enable', 'auto_play', 'auto_play_interval']),
  circuit_breaker: always(['enabled', 'high_threshold', 'high_pulse', 'critical_threshold', 'critical_pulse', 'dying_threshold', 'dying_pulse']),
  tencentcloud_cls: off(['enabled', 'stat_heartbeat', 'stat_streams', 'debug_logging', 'heartbeat_ratio', 'streams_ratio', 'secret_id', 'secret_key', 'endpoint', 'topic_id', 'label', 'tag']),
  tencentcloud_apm: off(['enabled', 'token', 'endpoint', 'service_name', 'debug_logging', 'team']),
  'http_api.raw_api': off(['enabled', 'allow_reload', 'allow_query', 'allow_update']),
  'http_api.https': off(['enabled', 'listen', 'key', 'cert']),
  'vhost.cluster': always(['mode', 'origin', 'token_traverse', 'vhost', 'debug_srs_upnode', 'coworkers', 'origin_cluster', 'protocol', 'follow_client']),
  'vhost.dvr': off(['enabled', 'dvr_apply', 'dvr_path', 'dvr_plan', 'dvr_duration', 'dvr_wait_keyframe', 'time_jitter']),
  'vhost.refer': off(['enabled', 'all', 'publish', 'play']),
  'vhost.exec': off(['enabled', 'publish']),
  'vhost.ingest': off(['enabled', 'input', 'ffmpeg', 'engine'], { input: always(['type', 'url']), engine: ENGINE }),
  'vhost.transcode': off(['enabled', 'ffmpeg', 'engine'], { engine: ENGINE }),
  'vhost.forward': off(['enabled', 'destination', 'backend']),
  'vhost.dash': off(['enabled', 'dash_fragment', 'dash_update_period', 'dash_timeshift', 'dash_path', 'dash_mpd_file', 'dash_window_size', 'dash_dispose', 'dash_cleanup']),
  'vhost.hds': off(['enabled', 'hds_fragment', 'hds_window', 'hds_path']),
  'vhost.rtc': off(['enabled', 'nack', 'twcc', 'nack_no_copy', 'bframe', 'aac', 'stun_timeout', 'stun_strict_check', 'dtls_role', 'dtls_version',
    'drop_for_pt', 'rtc_to_rtmp', 'pli_for_rtmp', 'rtmp_to_rtc', 'keep_bframe', 'opus_bitrate', 'aac_bitrate', 'keep_avc_nalu_sei', 'init_rate_from_sdp']),
  'vhost.srt': off(['enabled', 'srt_to_rtmp']),
  'vhost.rtsp': off(['enabled', 'rtmp_to_rtsp']),
  'vhost.bandcheck': off(['enabled', 'key', 'interval', 'limit_kbps']),
  'vhost.http': off(['enabled', 'mount', 'dir']),
  'vhost.mr': off(['enabled', 'latency']),
  'vhost.http_hooks': off(['enabled', 'on_connect', 'on_close', 'on_publish', 'on_unpublish', 'on_play', 'on_stop', 'on_dvr', 'on_hls', 'on_hls_notify']),
  'vhost.security': off(['enabled', 'deny', 'allow']),
  http_stream: always(['enabled', 'listen', 'dir', 'crossdomain']),
};
