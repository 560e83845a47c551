import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Middleware } from 'koa';
import type { Logger } from '../log.js';
import { bodyBytesSent } from './h2/bytes.js';
import { logAddress } from '../net/address.js';

export type AccessFormat = 'combined' | 'json' | 'off';

export interface RequestRecord {
  route: string;
  status: number;
  bytes: number;
  ms: number;
}

/** What a line says of the request itself: the same for every repeat of a head. */
export interface LineFields {
  ip: string;
  method: string;
  url: string;
  httpVersion: string;
  referer: string;
  agent: string;
}

export interface AccessEntry extends RequestRecord, LineFields {
  error: string | null;
}

/** Query parameters that carry credentials (publish secret, signed token): never written to the log. */
const CREDENTIAL_PARAM = /[?&](?:token|secret)=/i;
const CREDENTIAL_PARAM_G = /(?<=[?&])(token|secret)=[^&#]*/gi;

/** One access line: NGINX's combined format plus the duration in seconds, or one JSON object. */
export function formatAccess(f: 'combined' | 'json', entry: AccessEntry): string {
  if (f === 'combined') return combinedHead(entry) + secondsText(entry.ms);
  const e = CREDENTIAL_PARAM.test(entry.url) ? { ...entry, url: entry.url.replace(CREDENTIAL_PARAM_G, '$1=***') } : entry;
  return JSON.stringify({
    time: isoNow(), remote: e.ip, method: e.method, url: e.url, proto: `HTTP/${e.httpVersion}`,
    status: e.status, bytes: e.bytes, ms: Math.round(e.ms * 10) / 10, route: e.route, referer: e.referer || null,
    agent: e.agent || null, error: e.error,
  });
}

/**
 * A combined line up to its duration, remembered for the last few requests: under load most
 * lines repeat the one before but for the duration (the same client, URL and answer in the same
 * second), and building one from ten fields, with the credential check on its URL, was most of
 * the log's cost per request. A hit compares the fields and reuses the string.
 */
interface Head {
  second: number;
  ip: string;
  method: string;
  url: string;
  httpVersion: string;
  status: number;
  bytes: number;
  referer: string;
  agent: string;
  text: string;
}
const HEADS_KEPT = 8;
const heads: (Head | undefined)[] = new Array(HEADS_KEPT).fill(undefined);
let nextHead = 0;

function combinedHead(e: AccessEntry): string {
  const second = refreshStamps(), clf = stampClf;
  for (let i = 0; i < HEADS_KEPT; i++) {
    const h = heads[i];
    if (h !== undefined && h.second === second && h.url === e.url && h.ip === e.ip && h.status === e.status && h.bytes === e.bytes
      && h.method === e.method && h.agent === e.agent && h.referer === e.referer && h.httpVersion === e.httpVersion) return h.text;
  }
  const [lead, request, tail] = combinedTexts(e);
  const text = `${lead}${clf}${request}${e.status} ${e.bytes}${tail}`;
  heads[nextHead] = { second, ip: e.ip, method: e.method, url: e.url, httpVersion: e.httpVersion, status: e.status, bytes: e.bytes, referer: e.referer, agent: e.agent, text };
  nextHead = (nextHead + 1) % HEADS_KEPT;
  return text;
}

/**
 * The parts of a combined line fixed by the request, around its time and its status and size:
 * `IP - - [` TIME `] "GET /url HTTP/1.1" ` STATUS SIZE ` "referer" "agent" ` DURATION. Secrets in
 * the query are masked here, so every writer of the format masks them.
 */
export function combinedTexts(e: LineFields): [string, string, string] {
  const url = CREDENTIAL_PARAM.test(e.url) ? e.url.replace(CREDENTIAL_PARAM_G, '$1=***') : e.url;
  return [`${e.ip} - - [`, `] "${e.method} ${url} HTTP/${e.httpVersion}" `, ` "${e.referer || '-'}" "${e.agent || '-'}" `];
}

/** The durations of answers under a second, as the line writes them ("0.000" … "0.999"), made once. */
const SECONDS_TEXT: string[] = Array.from({ length: 1000 }, (_, i) => `0.${String(i).padStart(3, '0')}`);

/** A duration in ms as seconds with three decimals (NGINX's $request_time). */
export function secondsText(ms: number): string {
  const n = Math.round(ms);
  return n >= 0 && n < 1000 ? SECONDS_TEXT[n] : (ms / 1000).toFixed(3);
}

export function headerOf(req: IncomingMessage, name: 'referer' | 'user-agent'): string {
  const v = req.headers[name];
  return typeof v === 'string' ? v : '';
}

/**
 * One line per request when the response is done (or the client is gone). `record` also feeds
 * the metrics.
 */
export function accessLog(log: Logger, format: () => AccessFormat, record: (r: RequestRecord) => void): Middleware {
  return async (ctx, next) => {
    const start = performance.now();
    const socket = ctx.req.socket;
    const h2 = ctx.req.httpVersionMajor >= 2;
    const written0 = h2 ? 0 : socket.bytesWritten;
    const h2Bytes = h2 ? bodyBytesSent(ctx.res) : null;
    // Read now: an HTTP/2 stream's socket is gone by the time the response has closed.
    const ip = logAddress(socket?.remoteAddress);
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const ms = performance.now() - start;
      // HTTP/1 serialises requests on a socket, so the byte delta is this response; less its
      // head, it is NGINX's $body_bytes_sent (what the access log's bytes mean on every lane).
      // HTTP/2 streams share the socket: their body octets are counted as written.
      const bytes = h2Bytes !== null ? h2Bytes() : bodyBytes(ctx.res, socket.bytesWritten - written0, ctx.state.rawHeadBytes as number | undefined);
      // Live HTTP/1 streams write their own head to the socket and record its status in state.
      const status = (ctx.state.rawStatus as number | undefined) ?? (ctx.res.headersSent ? ctx.res.statusCode : 499);
      const route = (ctx.state.route as string | undefined) ?? 'none';
      record({ route, status, bytes, ms });
      const f = format();
      if (f === 'off') return;
      log.access(formatAccess(f, {
        route, status, bytes, ms, ip, method: ctx.method, url: ctx.originalUrl, httpVersion: ctx.req.httpVersion,
        referer: headerOf(ctx.req, 'referer'), agent: headerOf(ctx.req, 'user-agent'), error: (ctx.state.errorCode as string | undefined) ?? null,
      }));
    };
    ctx.res.once('finish', done);
    ctx.res.once('close', done);
    await next();
  };
}

/**
 * The body bytes of an HTTP/1 response that put `written` bytes on its socket: the head Node
 * wrote is its `_header` string (what morgan and on-headers read too; Node has no public
 * accessor), a head a live output wrote itself is passed as `rawHead`.
 */
export function bodyBytes(res: ServerResponse, written: number, rawHead?: number): number {
  const head = rawHead ?? (res as ServerResponse & { _header?: unknown })._header;
  const n = typeof head === 'number' ? head : typeof head === 'string' ? Buffer.byteLength(head, 'latin1') : 0;
  return Math.max(0, written - n);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The time fields of the current second, made once per second rather than once per line: at tens
 * of thousands of lines a second, formatting a Date for each was a visible share of the log's cost.
 */
let stampSecond = -1;
let stampClf = '';
let stampIso = '';
/** The current second (Date.now() / 1000), with its CLF and ISO texts made when it changed. */
function refreshStamps(now = Date.now()): number {
  const sec = Math.floor(now / 1000);
  if (sec !== stampSecond) {
    stampSecond = sec;
    const d = new Date(sec * 1000);
    stampClf = clf(d);
    stampIso = d.toISOString();
  }
  return sec;
}

/** ISO time with milliseconds: the cached second plus this line's milliseconds. */
function isoNow(): string {
  const now = Date.now();
  refreshStamps(now);
  const ms = now % 1000;
  return `${stampIso.slice(0, 20)}${String(ms).padStart(3, '0')}Z`;
}

/** Common Log Format time: 10/Oct/2000:13:55:36 +0000. */
export function clf(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
