import type { Context, Next } from 'koa';
import type { Config } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Logger } from '../log.js';
import { GatewayError } from '../errors.js';

export type StreamExt = 'flv' | 'm3u8' | 'ts' | 'aac' | 'mp3';

/** A request the routing table recognised as a stream: /{app}/{stream}.{ext} on a vhost. */
export interface StreamRequest {
  vhost: string;
  app: string;
  stream: string;
  ext: StreamExt;
}

export interface OriginDeps {
  hub: Hub;
  config: () => Config;
  log: Logger;
}

export interface Origin {
  /** Serves or ingests the stream; calls next() to let static files answer when nothing is live. */
  handle(ctx: Context, req: StreamRequest, next: Next): Promise<void>;
  /** Whether a GET of this stream path is the origin's to answer now (live, pulled or uploaded), not a file's. */
  claims(req: StreamRequest): boolean;
  close(): void;
}

/** The stream origin (issue 5 fills in HTTP-FLV; issue 7 HLS, TS, AAC, MP3). */
export function createOrigin(deps: OriginDeps): Origin {
  return {
    async handle(ctx, _req, next) {
      if (ctx.method === 'GET' || ctx.method === 'HEAD') return next();
      throw new GatewayError('NOT_IMPLEMENTED', 'publishing is not available yet');
    },
    claims(req) {
      return deps.hub.find(req) !== undefined;
    },
    close() {},
  };
}
