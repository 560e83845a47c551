import type { Context } from 'koa';
import { GatewayError } from '../errors.js';
import { clientIp } from '../net/address.js';
import type { Logger } from '../log.js';
import { abortRequest, closeAfterResponse } from '../http/connection.js';
import type { Verdict } from '../auth/policy.js';

/**
 * HLS uploaded over HTTP, as `ffmpeg -f hls -method PUT http://host/live/up.m3u8` sends it: PUTs
 * of `up0.ts`, `up1.ts`, … and `up.m3u8` (pipelined on one keep-alive connection with
 * `-http_persistent 1`), DELETEs of segments that left its list (`-hls_flags delete_segments`).
 * The files live in memory under a per-file and a total byte bound, and vanish when nobody has
 * refreshed them for a while, so an uploader that stops cannot pin memory.
 */

export interface UploadLimits {
  /** One file larger than this is refused with 413. */
  maxFileBytes: number;
  /** All files together; an upload that would pass it is refused with 507. */
  maxTotalBytes: number;
  /** A file not rewritten for this long is dropped. */
  ttlMs: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxFileBytes: 32 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  ttlMs: 60_000,
};

/** An upload that sends nothing for this long is cut off. */
const UPLOAD_IDLE_TIMEOUT_MS = 30_000;

const TYPES: Record<string, string> = { m3u8: 'application/vnd.apple.mpegurl', ts: 'video/mp2t' };

export interface Upload {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly updated: number;
}

export class UploadStore {
  private readonly files = new Map<string, Upload>();
  private total = 0;
  private version = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    readonly limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, limits.ttlMs / 2));
    this.sweeper.unref();
  }

  get bytes(): number {
    return this.total;
  }

  get count(): number {
    return this.files.size;
  }

  get(key: string): Upload | undefined {
    const f = this.files.get(key);
    if (f && this.now() - f.updated > this.limits.ttlMs) {
      this.remove(key);
      return undefined;
    }
    return f;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Files held (the front door skips building a key when there are none). */
  get size(): number {
    return this.files.size;
  }

  /** Stores a file; throws STORE_FULL when the total bound would be passed. Returns whether it is new. */
  put(key: string, ext: string, body: Buffer): boolean {
    if (body.length > this.limits.maxFileBytes) throw new GatewayError('BODY_TOO_LARGE', `an uploaded file may have at most ${this.limits.maxFileBytes} bytes`);
    const old = this.files.get(key);
    const after = this.total - (old?.body.length ?? 0) + body.length;
    if (after > this.limits.maxTotalBytes) {
      this.sweep();
      if (this.total - (this.files.get(key)?.body.length ?? 0) + body.length > this.limits.maxTotalBytes) {
        throw new GatewayError('STORE_FULL', `uploads may hold at most ${this.limits.maxTotalBytes} bytes in all`);
      }
    }
    const existed = this.remove(key);
    this.version++;
    this.files.set(key, { body, type: TYPES[ext] ?? 'application/octet-stream', etag: `"${this.version.toString(36)}-${body.length.toString(36)}"`, updated: this.now() });
    this.total += body.length;
    return !existed;
  }

  remove(key: string): boolean {
    const f = this.files.get(key);
    if (!f) return false;
    this.files.delete(key);
    this.total -= f.body.length;
    return true;
  }

  sweep(): void {
    const t = this.now();
    for (const [k, f] of this.files) if (t - f.updated > this.limits.ttlMs) this.remove(k);
  }

  close(): void {
    clearInterval(this.sweeper);
    this.files.clear();
    this.total = 0;
  }
}

export interface UploadRequest {
  vhost: string;
  app: string;
  stream: string;
  ext: string;
}

export function uploadKey(r: UploadRequest): string {
  return `${r.vhost}/${r.app}/${r.stream}.${r.ext}`;
}

export interface UploadDeps {
  store: UploadStore;
  /** The policy chain, once per uploader session (src/auth/policy.ts). */
  authorise: (ctx: Context, r: UploadRequest) => Promise<Verdict>;
  log: Logger;
}

/** PUT (store) or DELETE (remove) of an uploaded HLS file, under the vhost's publish rules. */
export async function handleUpload(ctx: Context, r: UploadRequest, deps: UploadDeps): Promise<void> {
  const ip = clientIp(ctx.req.socket?.remoteAddress);
  const label = `${r.app}/${r.stream}.${r.ext}`;
  const verdict = await deps.authorise(ctx, r);
  if (!verdict.ok) {
    closeAfterResponse(ctx);
    throw new GatewayError(verdict.status === 401 ? 'UNAUTHORIZED' : 'PUBLISH_FORBIDDEN', `${ip} to ${label}`);
  }
  const key = uploadKey(r);
  if (ctx.method === 'DELETE') {
    if (!deps.store.remove(key)) throw new GatewayError('NOT_FOUND', `no uploaded ${label}`);
    ctx.status = 204;
    return;
  }
  const max = deps.store.limits.maxFileBytes;
  const declared = Number(ctx.get('Content-Length') || -1);
  if (declared > max) {
    closeAfterResponse(ctx);
    throw new GatewayError('BODY_TOO_LARGE', `an uploaded file may have at most ${max} bytes`);
  }
  const body = await readBounded(ctx, max);
  if (!body) {
    closeAfterResponse(ctx);
    deps.log.warn(`upload ${label} from ${ip}: more than ${max} bytes, refused`);
    throw new GatewayError('BODY_TOO_LARGE', `an uploaded file may have at most ${max} bytes`);
  }
  const created = deps.store.put(key, r.ext, body);
  ctx.status = created ? 201 : 204;
}

/** The request body, or null as soon as it passes `max` bytes (the rest is left unread). */
function readBounded(ctx: Context, max: number): Promise<Buffer | null> {
  const req = ctx.req;
  req.setTimeout(UPLOAD_IDLE_TIMEOUT_MS, () => abortRequest(ctx));
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.off('data', onData);
        req.pause();
        resolve(null);
        return;
      }
      parts.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(parts, n)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new GatewayError('BAD_REQUEST', 'upload cut off'));
    });
  });
}


/** GET/HEAD of an uploaded file: revalidated on every use, since a restarted ffmpeg reuses `up0.ts`. */
export function serveUpload(ctx: Context, f: Upload): void {
  ctx.set('ETag', f.etag);
  ctx.set('Cache-Control', 'no-cache');
  ctx.set('Last-Modified', new Date(f.updated).toUTCString());
  if (ctx.get('If-None-Match') === f.etag) {
    ctx.status = 304;
    return;
  }
  ctx.status = 200;
  ctx.type = f.type;
  ctx.body = f.body;
}
