import { GatewayError } from '../errors.js';
import type { ApiKit, Resource } from './kit.js';
import { vhostJson } from './srs.js';

/** GET /api/v1/vhosts/[id]: the configured vhosts with their streams' totals; `id` may be the name. */
export function vhosts(kit: ApiKit): Resource {
  const { hub, config } = kit.deps;
  return {
    name: 'vhosts',
    about: 'vhosts',
    get: (_ctx, id) => {
      const now = Date.now();
      const { clients } = kit.census();
      const rows = config().vhosts.map((v) => vhostJson(v, hub.all().filter((s) => s.name.vhost === v.name),
        clients.filter((c) => c.vhost === v.name).length, now));
      if (id !== undefined) {
        const v = rows.find((r) => r.id === id || r.name === id);
        if (!v) throw new GatewayError('API_NOT_FOUND', `no vhost with id ${id}`);
        return kit.envelope({ vhost: v });
      }
      return kit.envelope({ vhosts: rows });
    },
  };
}
