// The recordings list of the players page: GET /api/v1/recordings. Each recording gets a "Play"
// link to its HLS VOD playlist (hls.js plays and seeks it, also while it is still being recorded),
// and a finished file that the web root serves a link to the file itself; both play here
// (?url=…), as a shared link would.

const REFRESH_MS = 10_000;

function fmtDuration(s) {
  if (s == null) return 'length unknown';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}

function fmtBytes(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.round(n / 1e3)} kB`;
}

function item(r) {
  const li = document.createElement('li');
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = `${r.app}/${r.stream}`;
  const info = document.createElement('span');
  info.className = 'info';
  const when = r.start ?? r.end;
  const parts = [when ? new Date(when).toLocaleString() : '', fmtDuration(r.duration), fmtBytes(r.bytes), r.codecs.join(' + ')];
  if (r.state === 'recording') parts.push('recording now');
  info.textContent = parts.filter(Boolean).join(' · ');
  const links = document.createElement('span');
  links.className = 'links';
  if (r.vod) {
    const play = document.createElement('a');
    play.href = `?url=${encodeURIComponent(r.vod)}`;
    play.textContent = 'Play';
    play.className = 'play';
    play.setAttribute('aria-label', `Play: the recording of ${r.app}/${r.stream} from ${when ? new Date(when).toLocaleString() : 'an unknown time'} over HLS`);
    links.append(play);
  }
  if (r.url && r.state === 'done') {
    const a = document.createElement('a');
    a.href = `?url=${encodeURIComponent(r.url)}`;
    a.textContent = r.container.toUpperCase();
    a.setAttribute('aria-label', `${r.container.toUpperCase()}: play the recording ${r.url}`);
    links.append(a);
  }
  li.append(name, info, links);
  return li;
}

async function refresh() {
  const status = document.getElementById('recordings-status');
  const list = document.getElementById('recordings');
  try {
    const r = await fetch('/api/v1/recordings?count=200', { headers: { accept: 'application/json' } });
    if (!r.ok) {
      status.textContent = `The recordings list is not available (HTTP ${r.status}).`;
      return;
    }
    const body = await r.json();
    const recs = (body.recordings ?? []).slice().reverse();
    status.textContent = recs.length ? '' : 'No recordings. Enable the dvr block of a vhost to record its streams.';
    list.replaceChildren(...recs.map(item));
  } catch (e) {
    status.textContent = `The recordings list is not available (${e.message}).`;
  }
}

refresh();
setInterval(() => {
  if (!document.hidden) refresh();
}, REFRESH_MS);
