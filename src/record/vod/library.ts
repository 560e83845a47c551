import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { tmpPathOf } from '../path.js';
import type { RecordingInfo } from '../types.js';
import { FlvIndexer } from './flv-index.js';
import { Mp4Indexer } from './mp4-index.js';
import { DEFAULT_INDEX_LIMITS, type FileReader, type IndexLimits, type VodIndex } from './types.js';

/** Indexes kept, at most; past it the least recently used is dropped (and read again when asked for). */
export const MAX_CACHED_INDEXES = 512;

/** One recording with its index, as a playlist uses it. */
export interface VodFile {
  info: RecordingInfo;
  /** The file's name in URLs: a hash of its path, so a URL can name only a file the recorder lists. */
  id: string;
  /** Where its bytes are now (the `.tmp` while it is being written). */
  path: string;
  index: VodIndex;
  /** Wall-clock time of its first segment (ms since 1970), or null when nothing says. */
  wallMs: number | null;
}

interface Cached {
  indexer: FlvIndexer | Mp4Indexer;
  /** Updates of one file run one at a time. */
  busy: Promise<unknown>;
  finished: boolean;
}

export type RecordingSource = (filter: { vhost: string; app: string; stream: string }) => RecordingInfo[];

/**
 * The recordings of a stream, indexed for playback: each file is indexed once (a growing one
 * from where its index stopped), and the indexes of recently played files are kept.
 */
export class VodLibrary {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly recordings: RecordingSource,
    private readonly limits: IndexLimits = DEFAULT_INDEX_LIMITS,
  ) {}

  /**
   * The stream's recordings that may overlap [fromMs, toMs] (wall clock), indexed, oldest first;
   * no more once they hold `maxSegments` (a playlist lists no more, so a request for a stream's
   * whole history reads no more files than one playlist can show).
   */
  async files(vhost: string, app: string, stream: string, fromMs = -Infinity, toMs = Infinity, maxSegments = Infinity): Promise<VodFile[]> {
    const out: VodFile[] = [];
    let segments = 0;
    for (const info of this.recordings({ vhost, app, stream })) {
      if (segments >= maxSegments) break;
      // A finished file ends by its modification time; one that started after the range cannot overlap it.
      if ((info.endMs !== null && info.endMs < fromMs) || (info.startMs !== null && info.startMs > toMs)) continue;
      const f = await this.load(info);
      if (f === null) continue;
      out.push(f);
      segments += f.index.segments.length;
    }
    return out;
  }

  /** One recording of the stream by its URL id, indexed; null when the stream has no such file. */
  async file(vhost: string, app: string, stream: string, id: string): Promise<VodFile | null> {
    const info = this.recordings({ vhost, app, stream }).find((r) => idOf(r.file) === id);
    return info === undefined ? null : this.load(info);
  }

  private async load(info: RecordingInfo): Promise<VodFile | null> {
    const path = info.state === 'recording' ? tmpPathOf(info.file) : info.file;
    const key = resolve(path);
    let c = this.cache.get(key);
    if (c !== undefined) {
      this.cache.delete(key);
    } else {
      c = { indexer: info.container === 'mp4' ? new Mp4Indexer(this.limits) : new FlvIndexer(this.limits), busy: Promise.resolve(), finished: false };
      while (this.cache.size >= MAX_CACHED_INDEXES) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(key, c);
    const entry = c;
    const finished = info.state === 'done';
    const run = entry.busy.then(async () => {
      if (entry.finished) return entry.indexer.index;
      const index = await indexFile(path, entry.indexer, finished);
      entry.finished = finished && index !== null;
      return index;
    });
    entry.busy = run.catch(() => undefined);
    const index = await run;
    if (index === null) return null;
    return { info, id: idOf(info.file), path, index, wallMs: wallOf(info, index) };
  }
}

/** The URL id of a recording's file. */
export function idOf(file: string): string {
  return createHash('sha256').update(resolve(file)).digest('hex').slice(0, 16);
}

/** The VOD playlist of one recording: `/recordings/{app}/{stream}.m3u8?id=…` (src/record/vod/handler.ts). */
export function vodUrl(r: RecordingInfo): string {
  return `/recordings/${r.app.split('/').map(encodeURIComponent).join('/')}/${encodeURIComponent(r.stream)}.m3u8?id=${idOf(r.file)}`;
}

/** Updates an indexer from the file on disk; null when the file is gone (deleted, or renamed as it finished). */
async function indexFile(path: string, indexer: FlvIndexer | Mp4Indexer, finished: boolean): Promise<VodIndex | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await fh.stat();
    const reader: FileReader = {
      size,
      read: async (position, length) => {
        const b = Buffer.allocUnsafe(length);
        const { bytesRead } = await fh.read(b, 0, length, position);
        return b.subarray(0, bytesRead);
      },
    };
    try {
      return await indexer.update(reader, finished);
    } catch (err) {
      // A file cut shorter while being read (retention, a full disk): what was indexed stands.
      if (err instanceof RangeError) return indexer.index;
      throw err;
    }
  } finally {
    await fh.close();
  }
}

/** The first segment's wall-clock time: the recording's start, or (a file found on disk) its end less its length. */
function wallOf(info: RecordingInfo, index: VodIndex): number | null {
  if (info.startMs !== null) return info.startMs;
  const segs = index.segments;
  if (info.endMs === null || segs.length === 0) return null;
  const last = segs[segs.length - 1];
  return info.endMs - (last.startMs + last.durationMs - segs[0].startMs);
}
