import { constants as fsConstants, createReadStream, promises as fsp, type Stats } from 'node:fs';
import { sep } from 'node:path';
import type { Context } from 'koa';
import { GatewayError } from '../errors.js';
import { DIRECT_MIN_BYTES, DirectBody } from '../net/sendfile.js';
import { cacheControl, contentType, UNKNOWN_TYPE } from './mime.js';
import { parseRange } from './range.js';

/** How long a stat result is trusted (nginx's open_file_cache_valid, kept short for live HLS on disk). */
const STAT_TTL_MS = 200;
/** Entries in the stat cache before the oldest are evicted. */
const STAT_CACHE_ENTRIES = 10_000;
/** Files up to this size are served from memory (no open/read per request). */
const MEMORY_FILE_MAX_BYTES = 1024 * 1024;
/** Total bytes of file contents held in memory per root. */
const MEMORY_CACHE_MAX_BYTES = 64 * 1024 * 1024;
/** Read-stream chunk for larger files. */
const STREAM_CHUNK_BYTES = 256 * 1024;
/** memfd copies per root at most: each is an open fd, and sockets need fds too. */
const DIRECT_MAX_FILES = 256;

interface Entry {
  checkedAt: number;
  /** null: no such file (negative cache), or a path that resolves outside the root. */
  stat: Stats | null;
  outside: boolean;
  /** The file (or a directory on its path) exists but this process may not read it: 403, as NGINX answers EACCES. */
  denied: boolean;
  etag: string;
  lastModified: string;
  type: string;
  cache: string | undefined;
  body: Buffer | null;
  /**
   * The body's memfd copy for sendfile: the object from the front door's first request for the
   * file (files only the full table serves never get one), undefined until then, null for small
   * bodies or with sendfile off. The copy itself is made on the first plain-HTTP send, and counted
   * then (`copied`). Released when the entry leaves the cache.
   */
  direct: DirectBody | null | undefined;
  /** Whether the memfd copy was made and counts against the budgets (bytes and DIRECT_MAX_FILES). */
  copied: boolean;
  /** Bytes this entry counts against MEMORY_CACHE_MAX_BYTES (the body, and its memfd copy). */
  held: number;
  /** False once the entry has left the cache: no memfd is made for it any more. */
  live: boolean;
}

export const ALLOW_STATIC = 'GET, HEAD, OPTIONS';

/** A small file held in memory, as the fast paths serve it. */
export interface CachedBody {
  body: Buffer;
  etag: string;
  lastModified: string;
  type: string;
  cache: string | undefined;
  /** The same bytes in a sealed memfd, for sendfile; null for small bodies or with sendfile off. */
  direct: DirectBody | null | undefined;
}

export interface FileRootOptions {
  /** Keep memfd copies of large bodies for the front door's sendfile path. */
  direct: boolean;
  /** Where a file the process may not read is reported (one line per check of that file). */
  warn?: (msg: string) => void;
}

/**
 * Serves one directory tree: GET and HEAD, one byte range, ETag/Last-Modified with 304, and a
 * path check that no decoding trick or symlink can get out of the root.
 */
export class FileRoot {
  private realRoot: string | null = null;
  private readonly entries = new Map<string, Entry>();
  private memoryBytes = 0;
  private directFiles = 0;
  private closed = false;

  constructor(
    readonly dir: string,
    private readonly opts: FileRootOptions = { direct: false },
  ) {}

  /**
   * Serves `rawPath` (still percent-encoded, relative to the root, beginning with "/").
   * `urlPath` is the whole request path, for the directory redirect.
   */
  async serve(ctx: Context, rawPath: string, urlPath: string): Promise<void> {
    const method = ctx.method;
    if (method !== 'GET' && method !== 'HEAD') {
      throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: ALLOW_STATIC });
    }
    const rel = safeRelative(rawPath);
    let e = await this.lookup(rel);
    if (e.denied) throw new GatewayError('FORBIDDEN', 'permission denied');
    if (e.stat === null) throw new GatewayError(e.outside ? 'FORBIDDEN' : 'NOT_FOUND');
    if (e.stat.isDirectory()) {
      // Judged on the request's path, not the root-relative one: a mount point asked for without
      // its slash (`/hls` for a mount at /hls) is "/" inside its root, yet relative links in its
      // index need the slash form.
      if (!rel.endsWith('/') || !urlPath.endsWith('/')) {
        const q = ctx.querystring;
        ctx.status = 301;
        // One leading slash only: `//dir` would redirect to `//dir/`, which a browser reads as
        // the host "dir" (an open redirect).
        ctx.set('Location', `/${urlPath.replace(/^\/+/, '')}/${q ? `?${q}` : ''}`);
        ctx.body = '';
        return;
      }
      e = await this.lookup(`${rel}index.html`);
      // nginx answers 403 for a directory without an index when listing is off; so do we.
      if (e.stat === null || !e.stat.isFile()) throw new GatewayError('FORBIDDEN');
    } else if (!e.stat.isFile()) {
      throw new GatewayError('NOT_FOUND');
    }
    this.send(ctx, e);
  }

  private send(ctx: Context, e: Entry): void {
    const size = e.stat!.size;
    const h = ctx.request.headers;
    ctx.set('Accept-Ranges', 'bytes');
    ctx.set('ETag', e.etag);
    ctx.set('Last-Modified', e.lastModified);
    if (e.cache) ctx.set('Cache-Control', e.cache);
    ctx.set('Content-Type', e.type);
    if (e.type === UNKNOWN_TYPE) ctx.set('X-Content-Type-Options', 'nosniff');

    // RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since, then If-None-Match, then If-Modified-Since.
    const ifMatch = h['if-match'];
    if (ifMatch !== undefined && !etagMatches(ifMatch, e.etag, false)) return this.status(ctx, 412);
    if (ifMatch === undefined && h['if-unmodified-since'] !== undefined) {
      const t = Date.parse(h['if-unmodified-since']);
      if (!Number.isNaN(t) && Math.floor(e.stat!.mtimeMs / 1000) * 1000 > t) return this.status(ctx, 412);
    }
    const inm = h['if-none-match'];
    if (inm !== undefined) {
      if (etagMatches(inm, e.etag, true)) return this.status(ctx, 304);
    } else if (h['if-modified-since'] !== undefined) {
      const t = Date.parse(h['if-modified-since']);
      if (!Number.isNaN(t) && Math.floor(e.stat!.mtimeMs / 1000) * 1000 <= t) return this.status(ctx, 304);
    }

    let start = 0;
    let end = size - 1;
    const rangeHeader = h.range;
    if (rangeHeader !== undefined && this.rangeApplies(h['if-range'] as string | undefined, e)) {
      const r = parseRange(rangeHeader, size);
      if (r === 'unsatisfiable') {
        throw new GatewayError('RANGE_NOT_SATISFIABLE', undefined, { 'Content-Range': `bytes */${size}` });
      }
      if (r !== null) {
        start = r.start;
        end = r.end;
        ctx.status = 206;
        ctx.set('Content-Range', `bytes ${start}-${end}/${size}`);
      }
    }
    if (ctx.status !== 206) ctx.status = 200;
    const length = end - start + 1;
    if (ctx.method === 'HEAD') {
      // No body: Koa ends a HEAD response with the headers as set, Content-Length included.
      ctx.length = length;
      return;
    }
    if (e.body) {
      ctx.body = start === 0 && end === size - 1 ? e.body : e.body.subarray(start, end + 1);
    } else if (length === 0) {
      ctx.body = Buffer.alloc(0);
    } else {
      ctx.length = length;
      ctx.body = createReadStream(this.full(e), { start, end, highWaterMark: STREAM_CHUNK_BYTES });
    }
  }

  private status(ctx: Context, code: number): void {
    ctx.status = code;
  }

  private rangeApplies(ifRange: string | undefined, e: Entry): boolean {
    if (ifRange === undefined) return true;
    if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return ifRange === e.etag;
    const t = Date.parse(ifRange);
    return !Number.isNaN(t) && Math.floor(e.stat!.mtimeMs / 1000) * 1000 === t;
  }

  private readonly paths = new WeakMap<Entry, string>();

  private full(e: Entry): string {
    return this.paths.get(e)!;
  }

  /**
   * The front door's question: the in-memory body of a plain file. A fresh entry answers at once;
   * a stale one answers at once too while one stat re-checks it (stale while revalidating, as
   * NGINX's open_file_cache does for its whole valid period), so a busy moment neither waits nor
   * stats per request; a missing one is looked up and the answer waits for it.
   */
  fastBody(rel: string, now: number): CachedBody | undefined | Promise<CachedBody | undefined> {
    const e = this.entries.get(rel);
    if (e && now - e.checkedAt < STAT_TTL_MS) return this.fast(e);
    const p = this.lookup(rel);
    if (e && asBody(e)) return this.fast(e);
    return p.then((x) => this.fast(x));
  }

  /**
   * Whether a body fastBody gave is still what fastBody would give now, known without a lookup:
   * its entry is in the cache (an entry leaves it only through drop) and within its stat window.
   */
  stillFresh(b: CachedBody, now: number): boolean {
    const e = b as Entry;
    return e.live && now - e.checkedAt < STAT_TTL_MS;
  }

  /** A plain file's cached body for the front door, with the object that makes its memfd copy on first use. */
  private fast(e: Entry): CachedBody | undefined {
    const b = asBody(e);
    if (b === undefined || e.direct !== undefined) return b;
    e.direct = this.opts.direct && e.body!.length >= DIRECT_MIN_BYTES ? DirectBody.of(e.body!, () => this.admit(e)) : null;
    return b;
  }

  /**
   * Counts a memfd copy as it is about to be made (its first plain-HTTP send): false, and none is
   * made, when it would not fit. A body only ever sent over TLS or HTTP/2 never counts twice.
   */
  private admit(e: Entry): boolean {
    const size = e.body!.length;
    if (this.closed || !e.live || this.directFiles >= DIRECT_MAX_FILES || this.memoryBytes + size > MEMORY_CACHE_MAX_BYTES) return false;
    e.held += size;
    e.copied = true;
    this.memoryBytes += size;
    this.directFiles++;
    return true;
  }

  /** Lookups in flight, so a burst of requests for a stale path shares one stat. */
  private readonly refreshing = new Map<string, Promise<Entry>>();

  private lookup(rel: string): Promise<Entry> {
    const fresh = this.entries.get(rel);
    if (fresh && Date.now() - fresh.checkedAt < STAT_TTL_MS) return Promise.resolve(fresh);
    let p = this.refreshing.get(rel);
    if (p === undefined) {
      p = this.check(rel).finally(() => this.refreshing.delete(rel));
      this.refreshing.set(rel, p);
    }
    return p;
  }

  /** Stats (and reads, if small) a root-relative path; an unchanged file keeps its entry. */
  private async check(rel: string): Promise<Entry> {
    const now = Date.now();
    const cached = this.entries.get(rel);
    const root = this.realRoot ?? (this.realRoot = await fsp.realpath(this.dir).catch(() => this.dir));
    const full = root + rel.split('/').join(sep);
    let stat: Stats | null = null;
    let outside = false;
    let denied = false;
    try {
      stat = await fsp.stat(full);
      if (stat.isFile()) await fsp.access(full, fsConstants.R_OK);
      if (cached && cached.stat && sameFile(cached.stat, stat)) {
        cached.checkedAt = now;
        return cached;
      }
      const real = await fsp.realpath(full);
      if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) {
        stat = null;
        outside = true;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      denied = code === 'EACCES' || code === 'EPERM';
      if (denied) this.opts.warn?.(`${full}: permission denied (${code}): answered 403`);
      stat = null;
    }
    if (cached) this.drop(cached);
    const e: Entry = {
      checkedAt: now,
      stat,
      outside,
      denied,
      etag: stat ? `"${Math.floor(stat.mtimeMs / 1000).toString(16)}-${stat.size.toString(16)}"` : '',
      lastModified: stat ? new Date(Math.floor(stat.mtimeMs / 1000) * 1000).toUTCString() : '',
      type: contentType(rel) ?? UNKNOWN_TYPE,
      cache: cacheControl(rel),
      body: null,
      direct: undefined,
      copied: false,
      held: 0,
      live: true,
    };
    this.paths.set(e, full);
    if (stat?.isFile() && stat.size <= MEMORY_FILE_MAX_BYTES && this.memoryBytes + stat.size <= MEMORY_CACHE_MAX_BYTES) {
      try {
        const body = await fsp.readFile(full);
        if (body.length === stat.size) {
          e.body = body;
          e.held = body.length;
          this.memoryBytes += body.length;
        }
      } catch {
        // Raced with a delete or rename: serve it from disk (and fail there) instead.
      }
    }
    if (this.entries.size >= STAT_CACHE_ENTRIES) this.evict();
    this.entries.delete(rel);
    this.entries.set(rel, e);
    return e;
  }

  private evict(): void {
    let n = STAT_CACHE_ENTRIES / 10;
    for (const [k, v] of this.entries) {
      if (n-- <= 0) break;
      this.drop(v);
      this.entries.delete(k);
    }
  }

  /**
   * An entry leaves the cache: its bytes stop counting and its memfd closes. Requests still
   * holding it keep its in-memory body (the front door sees the released copy and writes that).
   * Idempotent: eviction can drop an entry that a check in flight then replaces.
   */
  private drop(e: Entry): void {
    this.memoryBytes -= e.held;
    e.held = 0;
    e.live = false;
    e.direct?.release();
    if (e.copied) {
      e.copied = false;
      this.directFiles--;
    }
  }

  /** Shutdown, or a reload that no longer serves this directory: every memfd closes. */
  close(): void {
    // A lookup still in flight may put an entry back after this: it must not get a memfd nobody closes.
    this.closed = true;
    for (const e of this.entries.values()) this.drop(e);
    this.entries.clear();
  }
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.isFile() === b.isFile();
}

/** RFC 9110 §8.8.3.2: weak comparison for If-None-Match, strong for If-Match. */
function etagMatches(header: string, etag: string, weak: boolean): boolean {
  if (header.trim() === '*') return true;
  for (let tag of header.split(',')) {
    tag = tag.trim();
    if (weak && tag.startsWith('W/')) tag = tag.slice(2);
    if (tag === etag) return true;
  }
  return false;
}

/**
 * Decodes the request path once and refuses anything that could name a file outside the root:
 * encoded separators, backslashes, NUL, and ".." segments. Returns a "/"-rooted clean path.
 */
export function safeRelative(rawPath: string): string {
  if (/%(2f|5c|00)/i.test(rawPath) || rawPath.includes('\\')) throw new GatewayError('FORBIDDEN', 'path');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new GatewayError('BAD_REQUEST', 'malformed percent-encoding in path');
  }
  if (decoded.includes('\0') || decoded.includes('\\')) throw new GatewayError('FORBIDDEN', 'path');
  const out: string[] = [];
  const parts = decoded.split('/');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p === '..') throw new GatewayError('FORBIDDEN', 'path');
    if (p === '.' || (p === '' && i < parts.length - 1)) continue;
    out.push(p);
  }
  return `/${out.join('/')}`;
}

function asBody(e: Entry): CachedBody | undefined {
  return e.body && e.stat?.isFile() ? (e as CachedBody) : undefined;
}
