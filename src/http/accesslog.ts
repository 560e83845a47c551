import type { Middleware } from 'koa';
import type { Logger } from '../log.js';

export type AccessFormat = 'combined' | 'json' | 'off';

export interface RequestRecord {
  route: string;
  status: number;
  bytes: number;
  ms: number;
}

/**
 * One line per request when the response is done (or the client is gone): NGINX's combined
 * format plus the duration, or JSON. `record` also feeds the metrics.
 */
export function accessLog(log: Logger, format: () => AccessFormat, record: (r: RequestRecord) => void): Middleware {
  return async (ctx, next) => {
    const start = performance.now();
    const socket = ctx.req.socket;
    const h2 = ctx.req.httpVersionMajor >= 2;
    const written0 = h2 ? 0 : socket.bytesWritten;
    // Read now: an HTTP/2 stream's socket is gone by the time the response has closed.
    const ip = socket?.remoteAddress ?? '-';
    const done = () => {
      const ms = performance.now() - start;
      // HTTP/1 serialises requests on a socket, so the byte delta is this response ($bytes_sent).
      const bytes = h2 ? Number(ctx.res.getHeader('content-length') ?? 0) : socket.bytesWritten - written0;
      // Live HTTP/1 streams write their own head to the socket and record its status in state.
      const status = (ctx.state.rawStatus as number | undefined) ?? (ctx.res.headersSent ? ctx.res.statusCode : 499);
      record({ route: (ctx.state.route as string) ?? 'none', status, bytes, ms });
      const f = format();
      if (f === 'off') return;
      if (f === 'json') {
        log.access(JSON.stringify({
          time: new Date().toISOString(), remote: ip, method: ctx.method, url: ctx.originalUrl, proto: `HTTP/${ctx.req.httpVersion}`,
          status, bytes, ms: Math.round(ms * 10) / 10, route: ctx.state.route ?? null, referer: ctx.get('Referer') || null,
          agent: ctx.get('User-Agent') || null, error: ctx.state.errorCode ?? null,
        }));
      } else {
        log.access(`${ip} - - [${clf(new Date())}] "${ctx.method} ${ctx.originalUrl} HTTP/${ctx.req.httpVersion}" ${status} ${bytes} "${ctx.get('Referer') || '-'}" "${ctx.get('User-Agent') || '-'}" ${(ms / 1000).toFixed(3)}`);
      }
    };
    let logged = false;
    const once = () => {
      if (logged) return;
      logged = true;
      done();
    };
    ctx.res.once('finish', once);
    ctx.res.once('close', once);
    await next();
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Common Log Format time: 10/Oct/2000:13:55:36 +0000. */
function clf(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
