import type { Context } from 'koa';
import type { ProxyRoute } from '../config/index.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { GatewayError } from '../errors.js';

export interface ProxyOptions {
  timeoutMs: number;
  connectTimeoutMs: number;
  keepAlive: number;
  log: Logger;
  metrics: Metrics;
}

/** A reverse proxy for one route (issue 4 fills it in). */
export interface Proxy {
  handle(ctx: Context): Promise<void>;
  close(): void;
}

export function createProxy(route: ProxyRoute, _opts: ProxyOptions): Proxy {
  return {
    handle: async () => {
      throw new GatewayError('NOT_IMPLEMENTED', `proxy to ${route.upstream.origin} is not available yet`);
    },
    close: () => {},
  };
}
