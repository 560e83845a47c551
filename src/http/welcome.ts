import { VERSION } from '../version.js';

/**
 * The page at "/" when http_server.dir has no index.html of its own, as SRS serves srs.html:
 * the version and where to go next.
 */
export function welcomePage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamgate ${VERSION}</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
code { background: #f3f3f3; padding: 0 .25rem; }
a { color: #0b57d0; }
</style>
</head>
<body>
<h1>streamgate <span id="version">${VERSION}</span></h1>
<p>The gateway is running.</p>
<ul>
<li><a href="/console/">Console</a>: live streams, clients, routes.</li>
<li><a href="/players/">Players</a>: play a stream over HTTP-FLV or HLS.</li>
<li><a href="/api/v1/versions">API</a>: SRS-compatible <code>/api/v1/</code>.</li>
</ul>
<p>Publish with <code>ffmpeg -re -f lavfi -i testsrc2 -f lavfi -i sine -c:v libx264 -pix_fmt yuv420p -c:a aac -f flv http://HOST:PORT/live/demo.flv</code>
and play <code>/live/demo.flv</code> or <code>/live/demo.m3u8</code>.</p>
</body>
</html>
`;
}
