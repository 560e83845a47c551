import { dirname, normalize, relative, sep } from 'node:path';
import type { StreamName } from '../live/types.js';
import type { DvrContainer } from './types.js';

/**
 * SRS's dvr_path variables. The time ones follow Go's reference time "2006-01-02 15:04:05.999"
 * as SRS documents them, in local time as SRS's srs_path_build_timestamp writes them.
 */
const VARIABLE = /\[(vhost|app|stream|timestamp|2006|01|02|15|04|05|999)\]/g;

/** The container a template writes, from its extension. */
export function containerOf(template: string): DvrContainer {
  return template.endsWith('.mp4') ? 'mp4' : 'flv';
}

/** A name part taken from a stream: never a path separator or a dot-segment, so a stream name cannot climb out of the tree. */
function safePart(s: string): string {
  const clean = s.replace(/[/\\\0]/g, '_');
  return clean === '.' || clean === '..' ? '_' : clean;
}

/** The file a recording of `name` started at `at` is written to. */
export function expandPath(template: string, name: StreamName, at: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const values: Record<string, string> = {
    vhost: safePart(name.vhost),
    app: safePart(name.app),
    stream: safePart(name.stream),
    timestamp: String(at.getTime()),
    2006: String(at.getFullYear()),
    '01': pad(at.getMonth() + 1),
    '02': pad(at.getDate()),
    15: pad(at.getHours()),
    '04': pad(at.getMinutes()),
    '05': pad(at.getSeconds()),
    999: pad(at.getMilliseconds(), 3),
  };
  return template.replace(VARIABLE, (_, v: string) => values[v]);
}

/**
 * What retention may touch for a template: the directory above its first variable, and a test
 * for a path below it that this template could have made. Retention deletes only such files, so
 * a dvr_path under a served web root never deletes the site's own .flv or .mp4 files.
 */
export interface PathPattern {
  root: string;
  /** The stream variables read from a file this template could have made, or null for any other file. */
  matches(file: string): Partial<Record<'vhost' | 'app' | 'stream', string>> | null;
}

export function pathPattern(template: string): PathPattern {
  const first = template.search(VARIABLE);
  const fixed = first < 0 ? template : template.slice(0, first);
  const root = first < 0 ? dirname(template) : fixed.endsWith('/') ? fixed.slice(0, -1) || '/' : dirname(fixed);
  const rest = normalize(template).slice(normalize(root).length).replace(/^[/\\]+/, '');
  const digits: Record<string, string> = { timestamp: '\\d+', 2006: '\\d{4}', '01': '\\d{2}', '02': '\\d{2}', 15: '\\d{2}', '04': '\\d{2}', '05': '\\d{2}', 999: '\\d{3}' };
  let source = '';
  let at = 0;
  const named = new Set<string>();
  for (const m of rest.matchAll(VARIABLE)) {
    const v = m[1];
    // [vhost] [app] [stream] are captured (the API lists a file found on disk under its stream), once each.
    const part = digits[v] ?? (named.has(v) ? '[^/\\\\]+' : `(?<${v}>[^/\\\\]+)`);
    named.add(v);
    source += escape(rest.slice(at, m.index)) + part;
    at = m.index! + m[0].length;
  }
  source += escape(rest.slice(at));
  const re = new RegExp(`^${source}$`);
  return {
    root,
    matches: (file) => {
      const r = relative(root, file);
      if (r.startsWith('..')) return null;
      const m = re.exec(r.split(sep).join('/'));
      return m ? { ...m.groups } : null;
    },
  };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The file being written: SRS writes `x.flv.tmp` and renames it when the file is finished, so a finished name is always a whole file. */
export function tmpPathOf(file: string): string {
  return `${file}.tmp`;
}

