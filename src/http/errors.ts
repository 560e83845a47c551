import type { Http2ServerRequest } from 'node:http2';
import type { Context, Middleware } from 'koa';
import { ERRORS, GatewayError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * The one place errors become responses. API paths answer JSON in SRS's style (a numeric
 * `code`), everything else a one-line text body. A client that went away is not an error.
 */
export function errorResponder(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null && !ctx.headerSent && ctx.respond !== false) {
        throw new GatewayError('NOT_FOUND');
      }
    } catch (err) {
      respondError(ctx, err, log);
    }
  };
}

export function respondError(ctx: Context, err: unknown, log: Logger): void {
  const ge = toGatewayError(err);
  if (ctx.headerSent || clientGone(ctx)) {
    if (ge.status >= 500) log.warn(`${ctx.method} ${ctx.path}: ${ge.code} after the response started: ${ge.message}`);
    ctx.res.destroy();
    return;
  }
  if (ge.status >= 500 && !(err instanceof GatewayError)) {
    log.error(`${ctx.method} ${ctx.path}: ${(err as Error)?.stack ?? String(err)}`);
  }
  // CORS so a browser can read the error, Connection so a refused publisher is still told "close".
  const keep = ['Connection', 'Access-Control-Allow-Origin', 'Access-Control-Allow-Headers', 'Access-Control-Allow-Methods',
    'Access-Control-Expose-Headers', 'Access-Control-Allow-Credentials', 'Access-Control-Request-Private-Network'];
  const saved = keep.map((k) => [k, ctx.response.get(k)] as const).filter(([, v]) => v !== undefined && v !== '');
  ctx.res.getHeaderNames().forEach((h) => ctx.res.removeHeader(h));
  for (const [k, v] of saved) ctx.set(k, v as string);
  for (const [k, v] of Object.entries(ge.headers)) ctx.set(k, v);
  ctx.status = ge.status;
  ctx.state.errorCode = ge.code;
  const { type, body } = errorBody(ctx.path, ge);
  ctx.type = type;
  ctx.body = body;
}

/**
 * Node ends an HTTP/2 HEAD stream's writable side as it opens (there is no body to send), so
 * Koa's ctx.writable is false for every HEAD over h2: there, only a destroyed stream means the
 * client left. (Koa itself then answers with res.end(), headers only, as a HEAD wants.)
 */
function clientGone(ctx: Context): boolean {
  if (ctx.req.httpVersionMajor >= 2) return (ctx.req as unknown as Http2ServerRequest).stream?.destroyed !== false;
  return !ctx.writable;
}

/** The body of an error answer: JSON in SRS's style on API paths, one text line elsewhere. */
export function errorBody(path: string, ge: GatewayError): { type: string; body: string } {
  if (isApiPath(path)) return { type: 'application/json', body: JSON.stringify({ code: ge.status, error: ge.code, message: ge.message }) };
  return { type: 'text/plain;charset=utf-8', body: `${ge.status} ${ge.message}\n` };
}

export function isApiPath(path: string): boolean {
  return path.startsWith('/api/') || path.startsWith('/rtc/') || path === '/api' || path === '/rtc';
}

function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { status?: number; statusCode?: number; expose?: boolean; message?: string };
  const status = e?.status ?? e?.statusCode;
  if (status === 413) return new GatewayError('BODY_TOO_LARGE');
  if (status === 415 || status === 400) return new GatewayError('BAD_REQUEST', e.expose ? e.message : undefined);
  if (status === 404) return new GatewayError('NOT_FOUND');
  if (status === 405) return new GatewayError('METHOD_NOT_ALLOWED');
  const code = (Object.keys(ERRORS) as (keyof typeof ERRORS)[]).find((k) => ERRORS[k].status === status && status < 500);
  if (code) return new GatewayError(code);
  return new GatewayError('INTERNAL');
}
