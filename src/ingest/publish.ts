import { CountingClient, type ClientInit } from '../live/client.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import type { Logger } from '../log.js';

/** A publisher seated on a source: what every ingest (HTTP-FLV, RTMP) does the same way. */
export interface Publication {
  readonly source: Source;
  readonly client: CountingClient;
  /** "app/stream", for log lines. */
  readonly label: string;
  /** Ends the stream for its players and forgets the client; true the first time only. */
  finish(why: string): boolean;
}

/**
 * Mounts `init.name` for a new publisher and logs it. Throws what `hub.publish` throws
 * (STREAM_BUSY for a second publisher, LIMIT_REACHED): nothing is registered then.
 */
export function startPublication(hub: Hub, log: Logger, init: Omit<ClientInit, 'publish'>, protocol: string, grant?: { end(): void; clientId?: string }): Publication {
  const client = new CountingClient(hub, { ...init, publish: true, id: grant?.clientId });
  const source = hub.publish(init.name, client);
  hub.addClient(client);
  const label = `${init.name.app}/${init.name.stream}`;
  log.info(`publish ${label} from ${init.ip} over ${protocol} (client ${client.id})`);
  let finished = false;
  return {
    source,
    client,
    label,
    finish(why) {
      if (finished) return false;
      finished = true;
      source.end('unpublished');
      hub.removeClient(client.id);
      // on_unpublish, queued behind its on_publish (src/auth/hooks.ts).
      grant?.end();
      log.info(`unpublish ${label} (${why}, ${client.received} bytes in)`);
      return true;
    },
  };
}
