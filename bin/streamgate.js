#!/usr/bin/env -S node --max-semi-space-size=16
// The young generation at 16 MiB semi-spaces, Node 20's default, on every Node: Node 24 grows them
// to 64 MiB under load, about 100 MiB more RSS of garbage waiting for a scavenge (README, "Memory").
// The compiled CLI: `npm run build` (run by `npm start` and `npm test`), or `prepare` when the
// package is installed from git, produces it; a tarball from `npm pack` ships it.
import('../dist/src/cli.js').catch((err) => {
  process.stderr.write(`streamgate: cannot load dist/src/cli.js (run \`npm run build\`): ${err?.message ?? err}\n`);
  process.exit(1);
});
