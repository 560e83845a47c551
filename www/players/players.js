// The players page: one <video>, three engines. HTTP-FLV and live MPEG-TS go through mpegts.js,
// HLS through hls.js (or the browser's own HLS), anything else straight to the <video>.
// The libraries are served by streamgate from their npm packages (vendor/), loaded only when a
// stream needs them, so the page works offline and a phone downloads one library, not two.

const $ = (id) => document.getElementById(id);
const video = /** @type {HTMLVideoElement} */ ($('video'));
const form = /** @type {HTMLFormElement} */ ($('play-form'));
const urlInput = /** @type {HTMLInputElement} */ ($('url'));
const formatSelect = /** @type {HTMLSelectElement} */ ($('format'));

const STATS_INTERVAL_MS = 500;
const STREAMS_INTERVAL_MS = 5000;
const MAX_ERRORS_SHOWN = 8;
/** HLS bitrate is averaged over the last few segments: one segment is too noisy, all of them too slow. */
const HLS_BITRATE_SEGMENTS = 5;

const LIBS = {
  mpegts: { src: 'vendor/mpegts.js', global: 'mpegts' },
  hls: { src: 'vendor/hls.js', global: 'Hls' },
};

/** @type {Map<string, Promise<any>>} */
const loading = new Map();

/** Loads a UMD library once, by a classic <script>, and resolves with the global it defines. */
function loadLib(name) {
  const lib = LIBS[name];
  if (window[lib.global]) return Promise.resolve(window[lib.global]);
  let p = loading.get(name);
  if (!p) {
    p = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = lib.src;
      s.onload = () => (window[lib.global] ? resolve(window[lib.global]) : reject(new Error(`${lib.src} did not define ${lib.global}`)));
      s.onerror = () => {
        loading.delete(name);
        reject(new Error(`could not load ${lib.src}`));
      };
      document.head.append(s);
    });
    loading.set(name, p);
  }
  return p;
}

// ---- what the viewer sees about the player --------------------------------------------------

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

/** The player's state, shown as text and kept on the element for scripts (and tests) to read. */
function setState(state, detail = '') {
  const el = $('st-state');
  el.dataset.state = state;
  setText('st-state', detail ? `${state}: ${detail}` : state);
}

function reportError(message) {
  const li = document.createElement('li');
  const t = document.createElement('time');
  const now = new Date();
  t.dateTime = now.toISOString();
  t.textContent = now.toLocaleTimeString();
  li.append(t, ' ', message);
  const list = $('errors');
  list.prepend(li);
  while (list.children.length > MAX_ERRORS_SHOWN) list.lastElementChild.remove();
}

function fmtBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '–';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

/** Seconds buffered ahead of the play head. */
function bufferAhead() {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
  }
  return 0;
}

/**
 * The protocol the stream's last finished request used (h2, http/1.1). Resource Timing records a
 * request when its body ends, so a live FLV response shows only the page's own protocol.
 */
function protocolOf(streamUrl) {
  const u = new URL(streamUrl);
  const dir = u.href.slice(0, u.href.lastIndexOf('/') + 1);
  const entries = performance.getEntriesByType('resource').filter((e) => e.name.startsWith(dir));
  const last = entries.at(-1);
  if (last && last.nextHopProtocol) return last.nextHopProtocol;
  if (u.origin === location.origin) {
    const nav = performance.getEntriesByType('navigation')[0];
    if (nav && nav.nextHopProtocol) return `${nav.nextHopProtocol} (page)`;
  }
  return '–';
}

// Live HLS makes a request every segment; the default 250-entry buffer would fill within minutes.
performance.setResourceTimingBufferSize?.(1000);
performance.addEventListener?.('resourcetimingbufferfull', () => performance.clearResourceTimings());

function renderStats() {
  if (!session) return;
  setText('st-time', `${video.currentTime.toFixed(1)} s`);
  setText('st-buffer', `${bufferAhead().toFixed(1)} s`);
  setText('st-latency', session.latency?.() ?? '–');
  setText('st-size', video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : '–');
  setText('st-bitrate', fmtBitrate(session.bitrate()));
  const q = video.getVideoPlaybackQuality?.();
  setText('st-dropped', q ? `${q.droppedVideoFrames} of ${q.totalVideoFrames}` : 'not reported by this browser');
  setText('st-protocol', protocolOf(session.url));
}

// ---- engines --------------------------------------------------------------------------------

/**
 * @typedef {{ url: string, engine: string, bitrate: () => number, latency?: () => string, destroy: () => void }} Session
 * @type {Session | null}
 */
let session = null;
/** Bumped by every play/stop, so a library that finishes loading late does not start a stale play. */
let generation = 0;
/** The server ended the stream: running out of buffer afterwards is the end, not buffering. */
let streamEnded = false;

function kindOf(url, format) {
  if (format !== 'auto') return format;
  const path = url.pathname.toLowerCase();
  if (path.endsWith('.flv')) return 'flv';
  if (path.endsWith('.m3u8')) return 'hls';
  if (path.endsWith('.ts')) return 'ts';
  return 'native';
}

function startVideo() {
  // Muted autoplay is allowed everywhere; a refusal is reported, and the controls still work.
  video.play()?.catch((e) => {
    if (e.name !== 'AbortError') reportError(`autoplay refused: ${e.message}`);
  });
}

async function startMpegts(url, kind) {
  const mpegts = await loadLib('mpegts');
  // mpegts.js logs every parsed header to the console by default; keep warnings and errors only.
  mpegts.LoggingControl.applyConfig({ enableDebug: false, enableVerbose: false, enableInfo: false });
  if (!mpegts.isSupported()) throw new Error('this browser has no Media Source Extensions; HTTP-FLV cannot play here');
  const player = mpegts.createPlayer({ type: kind === 'ts' ? 'mpegts' : 'flv', isLive: true, url }, {
    // Live: hand bytes to the demuxer as they arrive instead of stashing 384 KB first (mpegts.js docs).
    enableStashBuffer: false,
    // Stay near the live edge after a stall instead of drifting further behind.
    liveBufferLatencyChasing: true,
  });
  let speedKBps = 0;
  player.on(mpegts.Events.STATISTICS_INFO, (s) => {
    speedKBps = s.speed ?? 0;
  });
  player.on(mpegts.Events.MEDIA_INFO, (m) => {
    setText('st-engine', `mpegts.js ${mpegts.version} (${kind === 'ts' ? 'MPEG-TS' : 'HTTP-FLV'}${m.videoCodec ? `, ${m.videoCodec}` : ''}${m.audioCodec ? ` + ${m.audioCodec}` : ''})`);
  });
  player.on(mpegts.Events.LOADING_COMPLETE, () => {
    // The server ended the response: the publisher stopped, or this player was kicked.
    streamEnded = true;
    setState('ended', 'the server ended the stream');
  });
  player.on(mpegts.Events.ERROR, (type, details, info) => {
    const msg = info && (info.msg || info.code) ? ` (${info.code ?? ''} ${info.msg ?? ''})`.replace('( ', '(') : '';
    reportError(`${type}: ${details}${msg}`);
    setState('error', details);
  });
  player.attachMediaElement(video);
  player.load();
  startVideo();
  setText('st-engine', `mpegts.js ${mpegts.version} (${kind === 'ts' ? 'MPEG-TS' : 'HTTP-FLV'})`);
  return {
    url,
    engine: 'mpegts.js',
    // mpegts.js reports download speed in KB/s; on a live stream that is the stream's bitrate.
    bitrate: () => speedKBps * 1024 * 8,
    destroy() {
      player.pause();
      player.unload();
      player.detachMediaElement();
      player.destroy();
    },
  };
}

function startNative(url, label) {
  video.src = url;
  startVideo();
  setText('st-engine', label);
  return {
    url,
    engine: 'native',
    bitrate: () => NaN,
    destroy() {
      video.removeAttribute('src');
      video.load();
    },
  };
}

/**
 * The codec strings hls.js hands Media Source (from the init segment: hvc1.…, av01.…, avc1.…,
 * mp4a.…) and whether this browser says it can decode each: an HEVC stream on a Chromium without
 * an HEVC decoder shows "hvc1.1.6.L63.90 (not supported here)" instead of a silent black video.
 */
function showCodecs(tracks) {
  const parts = [];
  for (const t of tracks) {
    if (!t?.codec) continue;
    const type = `${t.container ?? 'video/mp4'};codecs="${t.codec}"`;
    const ok = typeof MediaSource !== 'undefined' && MediaSource.isTypeSupported(type);
    parts.push(ok ? t.codec : `${t.codec} (not supported here)`);
  }
  if (parts.length > 0) setText('st-codecs', parts.join(', '));
}

async function startHls(url) {
  // hls.js's README: prefer hls.js wherever MSE exists, because Chrome answers canPlayType "maybe"
  // for HLS yet fails on some streams; native HLS only where ManagedMediaSource says it is Safari's
  // own well-tested player, or where there is no MSE at all (older iPhones).
  const canNative = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  if (canNative && 'ManagedMediaSource' in window) return startNative(url, 'native HLS');
  const Hls = await loadLib('hls');
  if (!Hls.isSupported()) {
    if (canNative) return startNative(url, 'native HLS');
    throw new Error('this browser can play HLS neither natively nor through Media Source Extensions');
  }
  // lowLatencyMode (hls.js's default, said here on purpose): on an LL-HLS playlist hls.js loads
  // parts, makes blocking reloads and sits PART-HOLD-BACK behind the live edge; elsewhere it is moot.
  // maxLiveSyncPlaybackRate: after a stall hls.js drifts behind its target latency for good at
  // the default rate of 1; up to 1.5× it catches up again (hls.js API docs, "Low-latency").
  const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
  /** @type {{ bytes: number, seconds: number }[]} */
  const recent = [];
  hls.on(Hls.Events.FRAG_LOADED, (_e, d) => {
    // stats.loaded, not payload.byteLength: the payload is transferred to hls.js's worker (detached).
    recent.push({ bytes: d.frag.stats.loaded, seconds: d.frag.duration });
    if (recent.length > HLS_BITRATE_SEGMENTS) recent.shift();
  });
  let mediaRecoveries = 0;
  hls.on(Hls.Events.ERROR, (_e, d) => {
    reportError(`${d.fatal ? 'fatal ' : ''}${d.type}: ${d.details}${d.response?.code ? ` (HTTP ${d.response.code})` : ''}`);
    if (!d.fatal) return;
    // A decode error is often recoverable once (hls.js API docs, "Fatal Error Recovery").
    if (d.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries++ < 1) {
      hls.recoverMediaError();
      return;
    }
    setState('error', d.details);
  });
  hls.on(Hls.Events.BUFFER_CODECS, (_e, d) => showCodecs([d.video, d.audio]));
  hls.on(Hls.Events.MANIFEST_PARSED, () => startVideo());
  hls.loadSource(url);
  hls.attachMedia(video);
  setText('st-engine', `hls.js ${Hls.version}`);
  return {
    url,
    engine: 'hls.js',
    // The stream's own bitrate (bytes per media second), not hls.js's network bandwidth estimate.
    bitrate: () => {
      const bytes = recent.reduce((n, r) => n + r.bytes, 0);
      const seconds = recent.reduce((n, r) => n + r.seconds, 0);
      return seconds > 0 ? (bytes * 8) / seconds : NaN;
    },
    latency: () => hlsLatency(hls),
    destroy() {
      hls.destroy();
      video.removeAttribute('src');
      video.load();
    },
  };
}

/**
 * What the viewer is behind, as "1.2 s (hls.js 1.0 s)": the wall clock against the displayed
 * frame's EXT-X-PROGRAM-DATE-TIME (the server stamps each segment when its first frame arrives),
 * then hls.js's own estimate of the distance to the live edge. The page's latency readout.
 */
function hlsLatency(hls) {
  // A VOD playlist (a recording) has no live edge to be behind.
  if (hls.levels?.[hls.currentLevel]?.details?.live === false) return '–';
  const date = hls.playingDate;
  const own = Number.isFinite(hls.latency) && hls.latency > 0 ? `hls.js ${hls.latency.toFixed(1)} s` : '';
  if (!date) return own || '–';
  const s = (Date.now() - date.getTime()) / 1000;
  return own ? `${s.toFixed(1)} s (${own})` : `${s.toFixed(1)} s`;
}

function stop() {
  generation++;
  streamEnded = false;
  if (session) {
    try {
      session.destroy();
    } catch (e) {
      reportError(`stopping: ${e.message}`);
    }
  }
  session = null;
  for (const id of ['st-engine', 'st-protocol', 'st-codecs', 'st-size', 'st-time', 'st-buffer', 'st-latency', 'st-bitrate', 'st-dropped']) setText(id, '–');
}

async function play(raw, format = 'auto') {
  stop();
  const gen = generation;
  $('errors').replaceChildren();
  let url;
  try {
    url = new URL(raw, location.href);
  } catch {
    setState('error', `not a URL: ${raw}`);
    return;
  }
  if (location.protocol === 'https:' && url.protocol === 'http:') {
    reportError('this page is HTTPS, so the browser blocks an http:// stream (mixed content); use a relative URL or https://');
  }
  // The address bar carries what was typed (relative stays relative) so the link works on any host.
  const q = new URLSearchParams({ url: raw });
  if (format !== 'auto') q.set('format', format);
  history.replaceState(null, '', `?${q}`);
  setState('loading');
  const kind = kindOf(url, format);
  try {
    const s = kind === 'flv' || kind === 'ts' ? await startMpegts(url.href, kind)
      : kind === 'hls' ? await startHls(url.href)
        : startNative(url.href, 'native');
    if (gen !== generation) {
      s.destroy();
      return;
    }
    session = s;
  } catch (e) {
    if (gen !== generation) return;
    reportError(e.message);
    setState('error', e.message);
  }
}

// The <video>'s own events drive the state shown; the engines add "ended" and "error" from the network side.
// Once the server has ended the stream, the buffered tail may still stall and play again: the
// state stays "ended" rather than going back to "playing" for a stream that is gone.
video.addEventListener('playing', () => !streamEnded && setState('playing'));
video.addEventListener('waiting', () => session && !streamEnded && setState('buffering'));
video.addEventListener('ended', () => {
  streamEnded = true;
  setState('ended', 'the stream ended');
});
video.addEventListener('error', () => {
  if (!session || session.engine !== 'native' || !video.error) return;
  reportError(`video: ${video.error.message || `error code ${video.error.code}`}`);
  setState('error', 'the browser could not play this stream');
});

form.addEventListener('submit', (e) => {
  e.preventDefault();
  const raw = urlInput.value.trim();
  if (raw) play(raw, formatSelect.value);
});
$('stop').addEventListener('click', () => {
  stop();
  setState('stopped');
});

setInterval(renderStats, STATS_INTERVAL_MS);

// ---- the live streams list ------------------------------------------------------------------

/** The stream's path without extension, from SRS's `url` field when present ("/live/demo"). */
function streamPath(s) {
  return s.url && s.url.startsWith('/') ? s.url : `/${s.app}/${s.name}`;
}

function describe(s) {
  const parts = [];
  if (s.video) parts.push(`${s.video.codec ?? 'video'}${s.video.width ? ` ${s.video.width}×${s.video.height}` : ''}`);
  if (s.audio) parts.push(`${s.audio.codec ?? 'audio'}`);
  return parts.join(' + ') || 'no media yet';
}

function streamLink(label, href) {
  const a = document.createElement('a');
  a.href = `?url=${encodeURIComponent(href)}`;
  a.textContent = label;
  // The visible "FLV"/"HLS" starts the accessible name (WCAG 2.5.3), the rest says which stream.
  a.setAttribute('aria-label', `${label}: play ${href}`);
  a.addEventListener('click', (e) => {
    // Play in place (the page keeps its state); the href still works in a new tab.
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    urlInput.value = href;
    formatSelect.value = 'auto';
    play(href);
  });
  return a;
}

async function refreshStreams() {
  const status = $('streams-status');
  const list = $('streams');
  let body;
  try {
    const r = await fetch('/api/v1/streams/', { headers: { accept: 'application/json' } });
    if (!r.ok) {
      setText('streams-status', `The stream list is not available (HTTP ${r.status}); type a URL above.`);
      list.replaceChildren();
      return;
    }
    body = await r.json();
  } catch (e) {
    setText('streams-status', `The stream list is not available (${e.message}).`);
    return;
  }
  const live = (body.streams ?? []).filter((s) => !s.publish || s.publish.active);
  status.textContent = live.length ? '' : 'Nothing is live. Publish with ffmpeg or OBS, then it appears here.';
  const items = live.map((s) => {
    const path = streamPath(s);
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = path.slice(1);
    const info = document.createElement('span');
    info.className = 'info';
    info.textContent = describe(s);
    const links = document.createElement('span');
    links.className = 'links';
    links.append(streamLink('FLV', `${path}.flv`), streamLink('HLS', `${path}.m3u8`));
    li.append(name, info, links);
    return li;
  });
  list.replaceChildren(...items);
}

refreshStreams();
setInterval(() => {
  if (!document.hidden) refreshStreams();
}, STREAMS_INTERVAL_MS);

// ---- a shared link: /players/?url=/live/demo.flv -------------------------------------------

const params = new URLSearchParams(location.search);
const initial = params.get('url');
if (initial) {
  urlInput.value = initial;
  const f = params.get('format');
  if (f && [...formatSelect.options].some((o) => o.value === f)) formatSelect.value = f;
  play(initial, formatSelect.value);
}
