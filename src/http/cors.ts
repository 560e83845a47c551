import type { Middleware } from 'koa';
import { GatewayError } from '../errors.js';

/**
 * CORS the way SRS answers it (srs_http_stack.cpp): the headers only when the request carries
 * Origin, every method and header allowed, and OPTIONS answered 200 with an empty body.
 * With crossdomain off, nothing is added and OPTIONS falls through to the routes (405 there).
 */
export const CORS_HEADERS: Readonly<Record<string, string>> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': '*',
  'Access-Control-Allow-Headers': '*',
  'Access-Control-Expose-Headers': '*',
  'Access-Control-Allow-Credentials': 'false',
  'Access-Control-Request-Private-Network': 'true',
};

export function cors(enabled: () => boolean): Middleware {
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
    if (ctx.get('Origin') !== '') ctx.set(CORS_HEADERS);
    if (ctx.method === 'OPTIONS') {
      ctx.status = 200;
      ctx.length = 0;
      ctx.body = '';
      return;
    }
    return next();
  };
}
