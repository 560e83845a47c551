import type { Context } from 'koa';
import { GatewayError } from '../errors.js';
import { FlvDemuxer } from '../media/flv/demuxer.js';
import { clientIp } from '../net/address.js';
import type { Hub } from '../live/hub.js';
import type { Logger } from '../log.js';
import type { AccessControl } from '../auth/policy.js';
import { doorRequest } from '../auth/doors.js';
import { startPublication } from './publish.js';
import type { StreamName } from '../live/types.js';
import { abortRequest, closeAfterResponse } from '../http/connection.js';

/** A publisher that sends nothing for this long is gone (its socket is closed). */
const PUBLISH_IDLE_TIMEOUT_MS = 30_000;

export interface HttpPublishDeps {
  hub: Hub;
  log: Logger;
  access: AccessControl;
}

/**
 * HTTP-FLV ingest: `POST`/`PUT /{app}/{stream}.flv` with an FLV body, chunked, as
 * `ffmpeg -f flv http://…` sends it. ffmpeg never reads the response, so nothing is answered
 * until the body ends: ending the response early would make it stop publishing.
 */
export async function publishHttpFlv(ctx: Context, name: StreamName, deps: HttpPublishDeps): Promise<void> {
  const { hub, log } = deps;
  const ip = clientIp(ctx.req.socket?.remoteAddress);
  const verdict = await deps.access.authorise(doorRequest(ctx, 'publish', name, 'HTTP-FLV'));
  if (!verdict.ok) {
    closeAfterResponse(ctx);
    throw new GatewayError(verdict.status === 401 ? 'UNAUTHORIZED' : 'PUBLISH_FORBIDDEN');
  }
  const req = ctx.req;
  let pub;
  try {
    pub = startPublication(hub, log, {
      type: 'flv-publish',
      ip,
      name,
      url: `/${name.app}/${name.stream}`,
      tcUrl: `http://${ctx.host}/${name.app}`,
      pageUrl: ctx.get('Referer'),
      kick: () => abortRequest(ctx),
    }, 'HTTP-FLV', verdict);
  } catch (err) {
    verdict.end();
    // ffmpeg never reads the response and keeps sending until the socket closes: answer (409 for
    // a second publisher), then close, or it would stream into a request nobody reads.
    closeAfterResponse(ctx);
    throw err;
  }
  const { source, client, label } = pub;
  const demuxer = new FlvDemuxer();
  let declared = false;
  req.setTimeout(PUBLISH_IDLE_TIMEOUT_MS, () => abortRequest(ctx));
  ctx.respond = false;

  await new Promise<void>((resolve) => {
    let finished = false;
    const finish = (why: string, bad = false) => {
      if (finished) return;
      finished = true;
      pub.finish(why);
      if (bad) {
        abortRequest(ctx);
      } else if (!ctx.res.headersSent && ctx.res.writable) {
        ctx.res.writeHead(200, { 'Content-Type': 'text/plain;charset=utf-8', 'Content-Length': '0' });
        ctx.res.end();
      }
      resolve();
    };
    req.on('data', (chunk: Buffer) => {
      client.received += chunk.length;
      let packets;
      try {
        packets = demuxer.push(chunk);
      } catch (err) {
        log.warn(`publish ${label}: bad FLV from ${ip}, disconnecting: ${(err as Error).message}`);
        finish('malformed FLV', true);
        return;
      }
      if (!declared && demuxer.header) {
        declared = true;
        source.declared = { audio: demuxer.header.hasAudio, video: demuxer.header.hasVideo };
      }
      for (const p of packets) source.push(p);
    });
    req.on('end', () => finish('end of body'));
    req.on('error', () => finish('connection error'));
    req.on('close', () => finish('connection closed'));
    source.once('end', () => {
      // Kicked through the API or taken over: close the publisher's connection.
      if (!finished) finish('stream ended', true);
    });
  });
}

