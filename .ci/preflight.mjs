// `npm test`'s first step: the suite drives real programs (ffmpeg, curl, Chromium, NGINX, the
// benchmark's peers). Without one of them a test would fail late, or wait on a process that
// never comes; this says at once, on one line, what is missing and how to get it.
// Plain JavaScript with no imports outside Node: it runs before `npm run build` and `npm ci`.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Program → the Debian package `.ci/run` installs it from. */
const TOOLS = [
  ['ffmpeg', 'ffmpeg'],
  ['ffprobe', 'ffmpeg'],
  ['curl', 'curl'],
  ['chromium', 'chromium'],
  ['nginx', 'nginx-light'],
  ['caddy', 'caddy'],
  ['wrk', 'wrk'],
  ['h2load', 'nghttp2-client'],
  ['taskset', 'util-linux'],
  ['ps', 'procps'],
];

// The browser tests take Chromium from STREAMGATE_CHROMIUM when it is set; NGINX is run from
// /usr/sbin, which is not on every user's PATH.
const EXTRA = { chromium: process.env.STREAMGATE_CHROMIUM, nginx: '/usr/sbin/nginx' };

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function found(cmd) {
  const extra = EXTRA[cmd];
  if (extra && executable(extra)) return true;
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && executable(join(dir, cmd)));
}

const missing = TOOLS.filter(([cmd]) => !found(cmd));
if (missing.length > 0) {
  const names = missing.map(([cmd, pkg]) => (cmd === pkg ? cmd : `${cmd} (${pkg})`)).join(', ');
  process.stderr.write(`npm test: missing ${names}; run \`bash .ci/run\` (installs them and runs the tests)\n`);
  process.exit(1);
}
