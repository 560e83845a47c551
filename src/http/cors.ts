import type { Middleware } from 'koa';
import { GatewayError } from '../errors.js';
import { isApiPath } from './errors.js';

/** What every route can grant another origin: reading. */
export const READ_METHODS = 'GET, HEAD, OPTIONS';
/** A proxied prefix forwards every method; its upstream decides what each does. */
const PROXIED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
/** WebRTC signalling (WHIP/WHEP, SRS's /rtc/v1/play/) is a POST from players on other origins. */
const RTC_METHODS = 'GET, HEAD, POST, OPTIONS';
/** The one API write, DELETE /api/v1/clients/{id}: granted to other origins only behind Basic auth. */
const API_WRITE_METHODS = 'GET, HEAD, DELETE, OPTIONS';

/**
 * CORS the way SRS answers reads (srs_http_stack.cpp): the headers only when the request carries
 * Origin, any origin and header, OPTIONS answered 200 with an empty body. Two deliberate
 * differences: `Allow-Methods` names what the route grants instead of `*` (SRS's `*` let any web
 * page kick a publisher through DELETE), and no `Access-Control-Request-Private-Network`, which
 * is a request header (Private Network Access); a preflight that asks for it is answered with
 * the response header `Access-Control-Allow-Private-Network` for reads only.
 */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': READ_METHODS,
  'Access-Control-Allow-Headers': '*',
  'Access-Control-Expose-Headers': '*',
  'Access-Control-Allow-Credentials': 'false',
};

export interface CorsRoutes {
  /** `http_api.auth` is on: the API's writes may be granted, and Authorization is allowed. */
  apiAuth: boolean;
  /** Whether a path goes to a proxy route (not the embedded API). */
  proxied(path: string): boolean;
}

/** The methods a path's route grants another origin. */
export function routeMethods(path: string, r: CorsRoutes): string {
  if (path.startsWith('/rtc/') || path === '/rtc') return RTC_METHODS;
  if (isApiPath(path)) return r.apiAuth ? API_WRITE_METHODS : READ_METHODS;
  if (r.proxied(path)) return PROXIED_METHODS;
  return READ_METHODS;
}

/** The CORS headers for one request to `path`. */
export function corsFor(path: string, r: CorsRoutes): Record<string, string> {
  const h: Record<string, string> = { ...CORS_HEADERS, 'Access-Control-Allow-Methods': routeMethods(path, r) };
  // Fetch: a wildcard in Allow-Headers never covers Authorization; it must be named.
  if (r.apiAuth && isApiPath(path)) h['Access-Control-Allow-Headers'] = '*, Authorization';
  return h;
}

export function cors(enabled: () => boolean, routes: () => CorsRoutes = () => ({ apiAuth: false, proxied: () => false })): Middleware {
  return async (ctx, next) => {
    if (!enabled()) {
      try {
        return await next();
      } catch (err) {
        // Routes list OPTIONS in Allow because this middleware answers it; with crossdomain off
        // nothing does (405), and Allow must name only what the target supports (RFC 9110 §10.2.1).
        if (err instanceof GatewayError && err.headers.Allow) {
          err.headers.Allow = err.headers.Allow.split(/\s*,\s*/).filter((m) => m !== 'OPTIONS').join(', ');
        }
        throw err;
      }
    }
    const origin = ctx.get('Origin') !== '';
    if (origin) ctx.set(corsFor(ctx.path, routes()));
    if (ctx.method === 'OPTIONS') {
      const asked = ctx.get('Access-Control-Request-Method').toUpperCase();
      if (origin && ctx.get('Access-Control-Request-Private-Network') === 'true' && (asked === '' || READ_METHODS.includes(asked))) {
        ctx.set('Access-Control-Allow-Private-Network', 'true');
      }
      ctx.status = 200;
      ctx.length = 0;
      ctx.body = '';
      return;
    }
    return next();
  };
}
