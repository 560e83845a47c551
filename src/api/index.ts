import type { Context, Middleware } from 'koa';
import { Router } from '@koa/router';
import { GatewayError } from '../errors.js';
import { clients } from './clients.js';
import { config } from './config.js';
import { type ApiDeps, type ApiKit, makeKit, type Resource } from './kit.js';
import { recordings } from './recordings.js';
import { rtcWithoutBackend } from './rtc.js';
import { streams } from './streams.js';
import { summaries } from './summaries.js';
import { versions } from './versions.js';
import { vhosts } from './vhosts.js';

export { type ApiDeps, SERVER_ID } from './kit.js';
export { vhostId } from './srs.js';

/**
 * The resources under /api/v1/, in the order the /api/v1/ index lists them. Adding one is one
 * line here: a function from the shared kit to a Resource (src/api/kit.ts).
 */
const RESOURCES: ((kit: ApiKit) => Resource)[] = [
  versions,
  summaries,
  streams,
  clients,
  vhosts,
  config,
  recordings,
];

const READ_ONLY = 'GET, HEAD, OPTIONS';

/**
 * The embedded SRS-compatible HTTP API: SRS's envelope and field names over the live hub, so
 * SRS's console, players and scripts work against streamgate unchanged. Read-only except
 * `DELETE /api/v1/clients/{id}`, which kicks a player or a publisher. The gateway has already
 * applied CORS and the API guard (src/auth/api-guard.ts) when a request gets here.
 */
export function createApi(deps: ApiDeps): Middleware {
  const kit = makeKit(deps);
  const resources = RESOURCES.map((make) => make(kit));
  // Case-sensitive as SRS's paths are; a trailing slash is optional everywhere (`streams/`).
  const router = new Router({ sensitive: true });

  const index = (urls: Record<string, string>): Middleware => (ctx) => {
    ctx.body = kit.envelope({ urls });
  };
  router.get('/api', index({ v1: 'the api version 1.0' }));
  router.get('/api/v1', index(Object.fromEntries(resources.map((r) => [r.name, r.about]))));
  router.all('/api', refuse(READ_ONLY));
  router.all('/api/v1', refuse(READ_ONLY));
  for (const r of resources) mount(router, r);
  router.all('/rtc{/*rest}', rtcWithoutBackend(deps));

  const routes = router.routes() as unknown as Middleware;
  // Every /api/ and /rtc/ request ends here: what no route takes is the API's own 404.
  return (ctx) => routes(ctx, async () => {
    throw new GatewayError('API_NOT_FOUND', ctx.path);
  });
}

/** `/api/v1/{name}` and `/api/v1/{name}/{id}`: GET (and HEAD), DELETE where the resource takes it, 405 otherwise. */
function mount(router: Router, r: Resource): void {
  const list = `/api/v1/${r.name}`;
  const one = `${list}/:id`;
  const allow = r.delete ? `${READ_ONLY}, DELETE` : READ_ONLY;
  router.get(list, answer(r.get, false));
  router.get(one, answer(r.get, true));
  if (r.delete) {
    router.delete(one, answer(r.delete, true));
    // A DELETE of the whole list is never taken: it would kick everyone.
    router.delete(list, () => {
      throw new GatewayError('METHOD_NOT_ALLOWED', `DELETE needs a ${r.name.replace(/s$/, '')} id`, { Allow: READ_ONLY });
    });
  }
  router.all(list, refuse(allow));
  router.all(one, refuse(allow, true));
}

function answer(handler: Resource['get'], withId: boolean): Middleware {
  return (ctx) => {
    const id = withId ? idOf(ctx) : undefined;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = handler(ctx, id);
  };
}

/** 405 with the methods the path takes; a malformed id is still the 400 it is for every method. */
function refuse(allow: string, withId = false): Middleware {
  return (ctx) => {
    if (withId) idOf(ctx);
    throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: allow });
  };
}

/**
 * The id segment (`/api/v1/{name}/{id}`), decoded here rather than by the router: the router
 * passes malformed percent-encoding (`%ff`, `%`) through as raw text, and that is the client's
 * error (400), not an id to look up.
 */
function idOf(ctx: Context): string {
  const raw = ctx.path.split('/')[4] ?? '';
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new GatewayError('BAD_REQUEST', 'malformed percent-encoding in the id');
  }
}
