import type { ApiKit, Resource } from './kit.js';
import { configView } from './config-view.js';

/** GET /api/v1/config: the loaded config, read-only, secrets left out (src/api/config-view.ts). */
export function config(kit: ApiKit): Resource {
  const { deps } = kit;
  return {
    name: 'config',
    about: 'the loaded config, read-only',
    get: () => kit.envelope({ data: configView(deps.config(), deps.listeners(), deps.certificates?.() ?? []) }),
  };
}
