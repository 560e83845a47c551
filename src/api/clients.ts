import { GatewayError } from '../errors.js';
import type { ApiKit, Resource } from './kit.js';
import { clientJson } from './srs.js';

/** GET /api/v1/clients/[id]: publishers and players; DELETE /api/v1/clients/{id} kicks one. */
export function clients(kit: ApiKit): Resource {
  const { hub, log } = kit.deps;
  return {
    name: 'clients',
    about: 'publishers and players; DELETE kicks',
    get: (ctx, id) => {
      const now = Date.now();
      const { clients: all, streamIdOf } = kit.census();
      if (id !== undefined) {
        const c = hub.client(id);
        if (!c) throw new GatewayError('API_NOT_FOUND', `no client with id ${id}`);
        return kit.envelope({ client: clientJson(c, streamIdOf(c), kit.rates.kbps(c, now), now) });
      }
      return kit.envelope({ clients: kit.page(ctx, all).map((c) => clientJson(c, streamIdOf(c), kit.rates.kbps(c, now), now)) });
    },
    delete: (_ctx, id) => {
      const c = id === undefined ? undefined : hub.client(id);
      if (!c) throw new GatewayError('API_NOT_FOUND', `no client with id ${id}`);
      log.info(`api: kicked client ${id} (${c.type} ${c.url} from ${c.ip})`);
      c.kick();
      return kit.envelope({});
    },
  };
}
