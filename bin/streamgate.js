#!/usr/bin/env node
// The compiled CLI: `npm run build` (run by `npm start` and `npm test`), or `prepare` when the
// package is installed from git, produces it; a tarball from `npm pack` ships it.
import('../dist/src/cli.js').catch((err) => {
  process.stderr.write(`streamgate: cannot load dist/src/cli.js (run \`npm run build\`): ${err?.message ?? err}\n`);
  process.exit(1);
});
