// The console: live streams and clients from the embedded SRS-compatible API, polled every 2 s,
// and the gateway's loaded config (read-only). Tables are updated row by row, keyed by id, so a
// refresh never steals keyboard focus from a Kick button or scrolls the page.

const $ = (id) => document.getElementById(id);

const POLL_INTERVAL_MS = 2000;
/** Envelope fields every SRS API answer carries; not part of the data shown. */
const ENVELOPE = new Set(['code', 'server', 'service', 'pid']);
/** Never print these values even if an API returns them: the page may be on a shared screen. */
const SECRET_KEY = /secret|passw|token|credential|private/i;

// ---- formatting -----------------------------------------------------------------------------

function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : m ? `${m}m ${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

function fmtKbps(k) {
  return Number.isFinite(k) ? `${k} kbit/s` : '–';
}

/**
 * How long a stream has been live. SRS's `live_ms` is the wall-clock time the publish started
 * (ms since the epoch); a small number is read as a duration, so either convention shows right.
 */
function uptime(s, serverNowMs) {
  if (!Number.isFinite(s.live_ms) || s.live_ms <= 0) return NaN;
  if (s.live_ms < 1e11) return s.live_ms;
  return (serverNowMs ?? Date.now()) - s.live_ms;
}

function videoText(v) {
  if (!v) return '–';
  const codec = [v.codec, v.profile, v.level].filter(Boolean).join(' ');
  return v.width ? `${codec} ${v.width}×${v.height}` : codec || 'video';
}

function audioText(a) {
  if (!a) return '–';
  const rate = a.sample_rate ? ` ${a.sample_rate / 1000} kHz` : '';
  const ch = a.channel ? (a.channel === 1 ? ' mono' : a.channel === 2 ? ' stereo' : ` ${a.channel} ch`) : '';
  return `${[a.codec, a.profile].filter(Boolean).join(' ')}${rate}${ch}` || 'audio';
}

function streamPath(s) {
  return s.url && s.url.startsWith('/') ? s.url : `/${s.app}/${s.name}`;
}

// ---- fetching -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// With http_api auth on, the credentials typed into the login form, for this tab only. Requests
// omit the browser's own credentials: Fetch prompts only when credentials are included, and a
// prompt that a headless or embedded browser never shows would hang every poll.
const AUTH_KEY = 'streamgate-console-auth';

function authHeader() {
  const saved = sessionStorage.getItem(AUTH_KEY);
  return saved ? { authorization: `Basic ${saved}` } : {};
}

function askLogin() {
  const form = $('login');
  if (!form.hidden) return;
  form.hidden = false;
  $('login-user').focus();
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const bytes = new TextEncoder().encode(`${$('login-user').value}:${$('login-pass').value}`);
  sessionStorage.setItem(AUTH_KEY, btoa(String.fromCharCode(...bytes)));
  $('login-pass').value = '';
  $('login').hidden = true;
  refresh();
  loadConfig();
});

async function getJson(path, init) {
  const r = await fetch(path, { credentials: 'omit', ...init, headers: { accept: 'application/json', ...authHeader() } });
  if (r.status === 401) {
    sessionStorage.removeItem(AUTH_KEY);
    askLogin();
  }
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) throw new ApiError(r.status, body?.message ?? body?.error ?? `HTTP ${r.status}`);
  // SRS reports failures in the envelope with HTTP 200 and a non-zero code.
  if (body && typeof body.code === 'number' && body.code !== 0) throw new ApiError(r.status, body.message ?? `API code ${body.code}`);
  return body;
}

// ---- tables, updated in place ---------------------------------------------------------------

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * Makes tbody hold one row per item, in order, reusing rows by key: new rows are built by
 * `create`, every row's cells are refreshed by `update`.
 */
function syncRows(tbody, items, key, create, update) {
  const old = new Map([...tbody.rows].map((tr) => [tr.dataset.key, tr]));
  let prev = null;
  for (const item of items) {
    const k = String(key(item));
    let tr = old.get(k);
    if (tr) old.delete(k);
    else {
      tr = create(item);
      tr.dataset.key = k;
    }
    update(tr, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) tbody.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of old.values()) {
    // Keep focus on the page when the row that holds it goes away (a kicked client).
    if (tr.contains(document.activeElement)) tbody.closest('section')?.querySelector('h2')?.focus();
    tr.remove();
  }
}

/**
 * A new row for a live table: the first `header` cells are row headers. Each cell carries its
 * column's name (data-label) for the phone layout, and explicit ARIA roles, because browsers drop
 * table semantics once CSS turns rows into blocks.
 */
function row(table, header = 0) {
  const tr = document.createElement('tr');
  tr.setAttribute('role', 'row');
  for (const th of table.tHead.rows[0].cells) {
    const i = tr.cells.length;
    const c = document.createElement(i < header ? 'th' : 'td');
    if (i < header) c.scope = 'row';
    c.setAttribute('role', i < header ? 'rowheader' : 'cell');
    c.dataset.label = th.textContent.trim();
    tr.append(c);
  }
  return tr;
}

// ---- streams and clients --------------------------------------------------------------------

function renderStreams(streams, clients, serverNowMs) {
  const live = streams.filter((s) => !s.publish || s.publish.active);
  const players = new Map();
  for (const c of clients) if (!c.publish) players.set(c.stream, (players.get(c.stream) ?? 0) + 1);
  setText($('streams-count'), `(${live.length})`);
  $('streams-empty').hidden = live.length > 0;
  syncRows($('streams').tBodies[0], live, (s) => s.id,
    () => {
      const tr = row($('streams'), 1);
      const a = document.createElement('a');
      tr.cells[6].append(a);
      return tr;
    },
    (tr, s) => {
      const path = streamPath(s);
      const c = tr.cells;
      setText(c[0], path.slice(1));
      setText(c[1], videoText(s.video));
      setText(c[2], audioText(s.audio));
      setText(c[3], fmtKbps(s.kbps?.recv_30s));
      setText(c[4], fmtDuration(uptime(s, serverNowMs)));
      // SRS counts the publisher among a stream's clients; the clients list tells players apart.
      const n = players.get(s.id) ?? Math.max(0, (s.clients ?? 0) - (s.publish?.active ? 1 : 0));
      setText(c[5], String(n));
      const a = c[6].firstChild;
      const href = `/players/?url=${encodeURIComponent(`${path}.flv`)}`;
      if (a.getAttribute('href') !== href) a.href = href;
      setText(a, 'Play');
      a.setAttribute('aria-label', `Play ${path.slice(1)}`);
    });
}

function renderClients(clients, streams) {
  const names = new Map(streams.map((s) => [s.id, streamPath(s).slice(1)]));
  setText($('clients-count'), `(${clients.length})`);
  $('clients-empty').hidden = clients.length > 0;
  syncRows($('clients').tBodies[0], clients, (c) => c.id,
    (c) => {
      const tr = row($('clients'), 1);
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'kick';
      b.textContent = 'Kick';
      b.addEventListener('click', () => kick(c.id, b));
      tr.cells[8].append(b);
      return tr;
    },
    (tr, c) => {
      const cells = tr.cells;
      const stream = names.get(c.stream) ?? c.url?.replace(/^\//, '') ?? c.name ?? c.stream ?? '–';
      const role = c.publish ? 'publisher' : 'player';
      setText(cells[0], String(c.id));
      setText(cells[1], c.type ? `${role} (${c.type})` : role);
      setText(cells[2], stream);
      setText(cells[3], c.ip ?? '–');
      setText(cells[4], fmtDuration((c.alive ?? NaN) * 1000));
      setText(cells[5], fmtBytes(c.send_bytes));
      setText(cells[6], fmtBytes(c.recv_bytes));
      setText(cells[7], c.kbps ? `${c.kbps.send_30s ?? 0} / ${c.kbps.recv_30s ?? 0}` : '–');
      tr.dataset.role = role;
      cells[8].firstChild.setAttribute('aria-label', `Kick ${role} ${c.id} of ${stream}`);
    });
}

async function kick(id, button) {
  button.disabled = true;
  try {
    await getJson(`/api/v1/clients/${encodeURIComponent(id)}`, { method: 'DELETE' });
    setText($('problem'), '');
  } catch (e) {
    setText($('problem'), `Could not kick client ${id}: ${e.message}`);
    button.disabled = false;
    return;
  }
  // Show the result now rather than at the next tick.
  await refresh();
}

let timer = 0;
let inFlight = false;

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const [s, c] = await Promise.all([getJson('/api/v1/streams/'), getJson('/api/v1/clients/')]);
    const streams = s.streams ?? [];
    const clients = c.clients ?? [];
    renderStreams(streams, clients, null);
    renderClients(clients, streams);
    setText($('server'), [s.server && `server ${s.server}`, s.service && `service ${s.service}`, s.pid && `pid ${s.pid}`].filter(Boolean).join(' · '));
    setText($('updated'), `Updated ${new Date().toLocaleTimeString()}.`);
    setText($('problem'), '');
  } catch (e) {
    const hint = e.status === 501 || e.status === 404 ? ' (the embedded API is off or not available: proxy /api/ to an SRS, or enable http_api)' : '';
    setText($('problem'), `Could not load streams and clients: ${e.message}${hint}`);
  } finally {
    inFlight = false;
  }
}

function schedule() {
  clearTimeout(timer);
  if (!$('live').checked) return;
  timer = setTimeout(async () => {
    // A hidden tab does not poll: no traffic for nobody to see; it refreshes when shown again.
    if (!document.hidden) await refresh();
    schedule();
  }, POLL_INTERVAL_MS);
}

$('live').addEventListener('change', schedule);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});

// ---- the config view ------------------------------------------------------------------------

/** The heading order for what a gateway operator looks for first. */
const CONFIG_FIRST = ['listeners', 'routes', 'upstreams'];

function scalarText(k, v) {
  if (SECRET_KEY.test(k)) return '(hidden)';
  if (v === null || v === undefined) return '–';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return String(v);
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A table for an array of objects: one column per key any of them has. */
function tableOf(items, label) {
  const cols = [];
  for (const it of items) for (const k of Object.keys(it)) if (!cols.includes(k)) cols.push(k);
  const wrap = document.createElement('div');
  wrap.className = 'table-wrap';
  wrap.setAttribute('role', 'region');
  wrap.setAttribute('aria-label', label);
  wrap.tabIndex = 0;
  const t = document.createElement('table');
  const head = t.createTHead().insertRow();
  for (const k of cols) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = k;
    head.append(th);
  }
  const body = t.createTBody();
  for (const it of items) {
    const tr = body.insertRow();
    for (const k of cols) {
      const v = it[k];
      tr.insertCell().textContent = Array.isArray(v) ? v.map((x) => (isPlainObject(x) ? JSON.stringify(x) : scalarText(k, x))).join(', ')
        : isPlainObject(v) ? (SECRET_KEY.test(k) ? '(hidden)' : JSON.stringify(v)) : scalarText(k, v);
    }
  }
  wrap.append(t);
  return wrap;
}

/** Renders whatever the config view returns: arrays of objects as tables, objects as nested lists. */
function renderValue(key, v, depth) {
  if (Array.isArray(v)) {
    if (v.length === 0) {
      const p = document.createElement('p');
      p.className = 'help';
      p.textContent = 'none';
      return p;
    }
    if (v.every(isPlainObject)) return tableOf(v, key);
    const ul = document.createElement('ul');
    for (const x of v) ul.append(Object.assign(document.createElement('li'), { textContent: scalarText(key, x) }));
    return ul;
  }
  if (isPlainObject(v)) {
    const dl = document.createElement('dl');
    dl.className = 'kv';
    for (const [k, x] of Object.entries(v)) {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      if (SECRET_KEY.test(k)) dd.textContent = '(hidden)';
      else if (Array.isArray(x) || isPlainObject(x)) dd.append(depth < 4 ? renderValue(k, x, depth + 1) : document.createTextNode(JSON.stringify(x)));
      else dd.textContent = scalarText(k, x);
      dl.append(dt, dd);
    }
    return dl;
  }
  return document.createTextNode(scalarText(key, v));
}

async function loadConfig() {
  const box = $('config');
  let body;
  try {
    body = await getJson('/api/v1/config');
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'help';
    p.textContent = e.status === 404 || e.status === 501
      ? `This gateway does not offer a config view (HTTP ${e.status}).`
      : `Could not load the config: ${e.message}`;
    box.replaceChildren(p);
    return;
  }
  // SRS nests payloads under `data`; take it when that is all there is besides the envelope.
  let data = Object.fromEntries(Object.entries(body ?? {}).filter(([k]) => !ENVELOPE.has(k)));
  if (isPlainObject(data.data) && Object.keys(data).length === 1) data = data.data;
  if (isPlainObject(data.config) && Object.keys(data).length === 1) data = data.config;
  const keys = Object.keys(data).sort((a, b) => {
    const ia = CONFIG_FIRST.indexOf(a);
    const ib = CONFIG_FIRST.indexOf(b);
    return (ia < 0 ? CONFIG_FIRST.length : ia) - (ib < 0 ? CONFIG_FIRST.length : ib);
  });
  const parts = [];
  const scalars = {};
  for (const k of keys) {
    const v = data[k];
    if (!Array.isArray(v) && !isPlainObject(v)) {
      scalars[k] = v;
      continue;
    }
    const h = document.createElement('h3');
    h.textContent = k.charAt(0).toUpperCase() + k.slice(1).replace(/_/g, ' ');
    h.id = `config-${k}`;
    parts.push(h, renderValue(k, v, 0));
  }
  if (Object.keys(scalars).length) parts.unshift(renderValue('config', scalars, 0));
  box.replaceChildren(...parts);
}

$('config-reload').addEventListener('click', loadConfig);

// Headings take focus when the row holding focus disappears (see syncRows).
for (const h of document.querySelectorAll('main h2')) h.tabIndex = -1;

refresh().then(schedule);
loadConfig();
