import { readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { PathPattern } from './path.js';

/** Directory entries visited by one scan at most: a tree this large is not walked further (one log line). */
export const MAX_SCAN_ENTRIES = 100_000;
/** Directories deep a scan goes at most (dvr_path templates use a handful). */
const MAX_SCAN_DEPTH = 16;

export interface FoundFile {
  path: string;
  bytes: number;
  mtimeMs: number;
  /** Still being written (`.tmp`): counted, never deleted. */
  partial: boolean;
  vars: Partial<Record<'vhost' | 'app' | 'stream', string>>;
}

/** Every file below the template's root that it could have made (finished, or `.tmp` being written). */
export async function scan(pattern: PathPattern): Promise<{ files: FoundFile[]; truncated: boolean }> {
  const files: FoundFile[] = [];
  let visited = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > MAX_SCAN_DEPTH) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (++visited > MAX_SCAN_ENTRIES) return;
      const path = join(dir, e.name);
      // Symlinks are not followed: retention never deletes outside the tree it was given.
      if (e.isDirectory()) await walk(path, depth + 1);
      else if (e.isFile()) {
        const partial = e.name.endsWith('.tmp');
        const vars = pattern.matches(partial ? path.slice(0, -4) : path);
        if (!vars) continue;
        const st = await stat(path).catch(() => null);
        if (st) files.push({ path, bytes: st.size, mtimeMs: st.mtimeMs, partial, vars });
      }
    }
  };
  await walk(pattern.root, 0);
  return { files, truncated: visited > MAX_SCAN_ENTRIES };
}

/**
 * The finished files to delete, oldest first: every one older than `maxAgeMs`, then more while
 * all the template's files (those being written included) hold more than `maxBytes`. 0 = no bound.
 */
export function victims(files: readonly FoundFile[], maxAgeMs: number, maxBytes: number, now: number): FoundFile[] {
  const done = files.filter((f) => !f.partial).sort((a, b) => a.mtimeMs - b.mtimeMs);
  let total = files.reduce((n, f) => n + f.bytes, 0);
  const out: FoundFile[] = [];
  for (const f of done) {
    const old = maxAgeMs > 0 && now - f.mtimeMs > maxAgeMs;
    const over = maxBytes > 0 && total > maxBytes;
    if (!old && !over) continue;
    out.push(f);
    total -= f.bytes;
  }
  return out;
}

export async function remove(path: string): Promise<boolean> {
  return unlink(path).then(() => true, () => false);
}

/** A `.tmp` left by a process that stopped while writing it becomes the recording it was (MP4 fragments and FLV tags play up to where it stopped). */
export async function recover(path: string): Promise<boolean> {
  const final = path.slice(0, -4);
  if (await stat(final).then(() => true, () => false)) return false;
  return rename(path, final).then(() => true, () => false);
}
