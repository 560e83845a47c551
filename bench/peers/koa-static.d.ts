// koa-static ships no types; the seed peer only calls it with a root directory.
declare module 'koa-static' {
  import type { Middleware } from 'koa';
  export default function serve(root: string, opts?: Record<string, unknown>): Middleware;
}
