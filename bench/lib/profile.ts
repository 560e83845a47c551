import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Reads the .cpuprofile that `node --cpu-prof` writes at exit and lists the functions with the
 * most self time, paths made relative to the repository so the report names no local directory.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export interface Frame {
  /** Share of all samples, percent. */
  self: number;
  fn: string;
  where: string;
}

const STARTUP = /^node:internal\/(modules|bootstrap)\//;
const STARTUP_FN = /^(compileSourceTextModule|wrapSafe|compileForInternalLoader)$/;

/** A script's place without this machine's directories: repository-relative, or from node_modules/ on. */
function shortUrl(url: string, repoRoot: string): string {
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + 1);
  if (path.startsWith(repoRoot)) return path.slice(repoRoot.length);
  return path.startsWith('/') ? path.slice(path.lastIndexOf('/') + 1) : path;
}

/** Top functions by self time, as a share of the busy (non-idle, non-start-up) samples. */
export function topFrames(dir: string, repoRoot: string, n = 12): Frame[] {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return [];
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[] };
  const by = new Map<string, Frame & { hits: number }>();
  let total = 0;
  for (const node of prof.nodes) {
    const hits = node.hitCount ?? 0;
    const cf = node.callFrame;
    // Waiting is not cost, and module loading is start-up, not the workload.
    if (hits === 0 || cf.functionName === '(idle)' || STARTUP.test(cf.url) || STARTUP_FN.test(cf.functionName)) continue;
    total += hits;
    const url = shortUrl(cf.url, repoRoot);
    const where = url ? `${url}:${cf.lineNumber + 1}` : '';
    const fn = cf.functionName || '(anonymous)';
    const key = `${fn} ${where}`;
    const f = by.get(key) ?? { self: 0, fn, where, hits: 0 };
    f.hits += hits;
    by.set(key, f);
  }
  return [...by.values()]
    .sort((a, b) => b.hits - a.hits)
    .slice(0, n)
    .map((f) => ({ self: (f.hits / Math.max(1, total)) * 100, fn: f.fn, where: f.where }));
}
