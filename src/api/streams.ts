import { GatewayError } from '../errors.js';
import type { ApiKit, Resource } from './kit.js';
import { streamJson } from './srs.js';

/** GET /api/v1/streams/[id]: the hub's live sources, with their player counts. */
export function streams(kit: ApiKit): Resource {
  const { hub } = kit.deps;
  return {
    name: 'streams',
    about: 'live streams',
    get: (ctx, id) => {
      const now = Date.now();
      const { perSource } = kit.census();
      if (id !== undefined) {
        const s = hub.sourceById(id);
        if (!s) throw new GatewayError('STREAM_NOT_FOUND', `no stream with id ${id}`);
        return kit.envelope({ stream: streamJson(s, perSource.get(s.id) ?? 0, now) });
      }
      return kit.envelope({ streams: kit.page(ctx, hub.all()).map((s) => streamJson(s, perSource.get(s.id) ?? 0, now)) });
    },
  };
}
