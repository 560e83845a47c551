import type { Middleware } from 'koa';
import { bodyParser } from '@koa/bodyparser';
import { GatewayError } from '../errors.js';
import type { ApiDeps } from './kit.js';

/**
 * /rtc/ without a WebRTC backend: a clear JSON error that says to proxy it. A POST's body is
 * still read (bounded) so a malformed or oversized offer gets its own 400/413, as from SRS.
 */
export function rtcWithoutBackend(deps: ApiDeps): Middleware {
  // Bodies are read only where an endpoint takes one (SRS's WebRTC signalling), bounded, and
  // only after the proxies: a proxied /rtc/ never meets this parser (koa-proxies #55).
  const parseRtcBody = bodyParser({
    enableTypes: ['json', 'text'],
    extendTypes: { text: ['application/sdp'] },
    jsonLimit: deps.config().limits.maxApiBodyBytes,
    textLimit: deps.config().limits.maxApiBodyBytes,
  });
  return async (ctx) => {
    if (ctx.method === 'POST') {
      const max = deps.config().limits.maxApiBodyBytes;
      const declared = Number(ctx.get('Content-Length') || 0);
      if (declared > max) throw new GatewayError('BODY_TOO_LARGE', `at most ${max} bytes`);
      await parseRtcBody(ctx, async () => {});
    }
    throw new GatewayError('RTC_NO_BACKEND');
  };
}
