import Koa from 'koa';
import proxy from 'koa-proxies';
import serve from 'koa-static';

/**
 * The seed's Koa front door as a benchmark peer: koa-proxies for the API and WebRTC signalling,
 * koa-static for everything else, exactly the three packages the seed doc lists and nothing
 * tuned (koa-proxies gets no keep-alive agent, as in the doc).
 *
 * Usage: node seed-koa.js PORT ROOT UPSTREAM_URL
 */
const [port, root, upstream] = process.argv.slice(2);
const app = new Koa();
app.use(proxy('/api/', { target: upstream, changeOrigin: false, logs: false }));
app.use(proxy('/rtc/', { target: upstream, changeOrigin: false, logs: false }));
app.use(serve(root));
app.listen(Number(port), '127.0.0.1', () => console.log(`seed-koa listening on ${port}`));
