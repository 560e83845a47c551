import type { Middleware } from 'koa';

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
    if (!enabled()) return next();
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
