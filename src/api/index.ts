import type { Middleware } from 'koa';
import type { Config } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { GatewayError } from '../errors.js';

/** What the embedded API reads: the live hub, the loaded config, the counters. */
export interface ApiDeps {
  hub: Hub;
  config: () => Config;
  metrics: Metrics;
  log: Logger;
  /** Listening addresses, for the read-only config view. */
  listeners: () => { role: string; address: string; port: number }[];
  startedAt: number;
}

/** The embedded SRS-compatible API on /api/ and /rtc/ (issue 4 fills it in). */
export function createApi(_deps: ApiDeps): Middleware {
  return async () => {
    throw new GatewayError('NOT_IMPLEMENTED', 'the embedded API is not available yet');
  };
}
