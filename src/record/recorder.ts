import { resolve } from 'node:path';
import type { VhostConfig } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import type { Logger } from '../log.js';
import { FlvFileEncoder, type FileEncoder, type Headers } from './flv-file.js';
import { mp4Encoder } from './mp4-binding.js';
import { containerOf, pathPattern } from './path.js';
import { recover, remove, scan, victims } from './retention.js';
import { StreamRecording } from './session.js';
import type { DvrConfig, RecordingInfo } from './types.js';

/** How often retention runs besides after every finished file (dvr_max_age is checked this often). */
export const RETENTION_INTERVAL_MS = 60_000;
/** Recordings the API can list at most; past it the oldest finished ones are forgotten (not deleted). */
export const MAX_LISTED_RECORDINGS = 20_000;

export interface RecorderDeps {
  hub: Hub;
  vhost: (name: string) => VhostConfig;
  vhosts: () => readonly VhostConfig[];
  log: Logger;
  /** A file is finished (SRS's on_dvr), with the id of the live stream it recorded. */
  finished?: (r: RecordingInfo, source: Source) => void;
  /** The MP4 container (default: src/media/mp4/'s writer); tests inject others. */
  mp4?: (headers: Headers) => FileEncoder | null;
  retentionIntervalMs?: number;
}

/**
 * SRS's DVR: every stream published on a vhost whose `dvr` is enabled (and that dvr_apply names)
 * is recorded by an internal sink of its source, whatever brought it (RTMP, HTTP-FLV, edge pull).
 * Owns the list of recordings the API shows and the retention of finished files.
 */
export class Recorder {
  private readonly sessions = new Set<StreamRecording>();
  private readonly catalogue = new Map<string, RecordingInfo>();
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private sweepAgain = false;
  private closed = false;

  constructor(private readonly deps: RecorderDeps) {
    deps.hub.on('publish', this.onPublish);
  }

  /** Recovers files a killed process left half-written, lists what is on disk, starts retention. */
  start(): void {
    const every = this.deps.retentionIntervalMs ?? RETENTION_INTERVAL_MS;
    this.timer = setInterval(() => this.sweep(), every);
    this.timer.unref();
    void this.startupScan();
  }

  /** Finished and in-progress recordings, oldest first; optionally of one app and/or stream. */
  list(filter: { vhost?: string; app?: string; stream?: string } = {}): RecordingInfo[] {
    const out: RecordingInfo[] = [];
    for (const r of this.catalogue.values()) {
      if ((filter.vhost === undefined || r.vhost === filter.vhost) && (filter.app === undefined || r.app === filter.app) && (filter.stream === undefined || r.stream === filter.stream)) out.push(r);
    }
    return out.sort((a, b) => (a.startMs ?? a.endMs ?? 0) - (b.startMs ?? b.endMs ?? 0));
  }

  /** Shutdown: the hub has ended the streams; waits for their files to be closed and renamed. */
  async close(): Promise<void> {
    this.closed = true;
    this.deps.hub.off('publish', this.onPublish);
    if (this.timer) clearInterval(this.timer);
    for (const s of this.sessions) s.end('shutdown');
    await Promise.all([...this.sessions].map((s) => s.settled()));
    await this.sweeping;
  }

  private readonly onPublish = (source: Source): void => {
    const cfg = this.deps.vhost(source.name.vhost).dvr;
    if (!cfg.enabled || this.closed) return;
    if (cfg.apply !== 'all' && !cfg.apply.includes(`${source.name.app}/${source.name.stream}`)) return;
    const session: StreamRecording = new StreamRecording({
      name: source.name,
      config: cfg,
      hasVideo: () => source.hasVideo,
      encoder: (container, headers) => (container === 'flv' ? new FlvFileEncoder(headers) : (this.deps.mp4 ?? mp4Encoder)(headers)),
      warn: (l) => this.deps.log.warn(l),
      info: (l) => this.deps.log.info(l),
      opened: (r) => this.remember(r),
      finished: (r, kept) => {
        if (!kept) this.catalogue.delete(key(r.file));
        else this.deps.finished?.(r, source);
        this.sweep();
      },
    });
    this.sessions.add(session);
    source.subscribe(
      {
        backlog: () => session.backlog(),
        write: (b) => {
          try {
            session.write(b);
          } catch (err) {
            // A container that refuses these packets stops this recording, never the source's fan-out.
            this.deps.log.error(`dvr: recording ${source.name.app}/${source.name.stream} stopped: ${(err as Error).message}`);
            session.end('closed');
          }
        },
        end: (reason) => {
          session.end(reason);
          void session.settled().then(() => this.sessions.delete(session));
        },
      },
      null,
      true,
    );
  };

  private remember(r: RecordingInfo): void {
    this.catalogue.delete(key(r.file));
    this.catalogue.set(key(r.file), r);
    if (this.catalogue.size <= MAX_LISTED_RECORDINGS) return;
    for (const [k, v] of this.catalogue) {
      if (v.state === 'done') {
        this.catalogue.delete(k);
        break;
      }
    }
  }

  /** The dvr configs in force, one per distinct dvr_path (vhosts may share one). */
  private configs(): { vhost: string; dvr: DvrConfig }[] {
    const seen = new Set<string>();
    const out: { vhost: string; dvr: DvrConfig }[] = [];
    for (const v of this.deps.vhosts()) {
      if (!v.dvr.enabled || seen.has(v.dvr.path)) continue;
      seen.add(v.dvr.path);
      out.push({ vhost: v.name, dvr: v.dvr });
    }
    return out;
  }

  private async startupScan(): Promise<void> {
    for (const { vhost, dvr } of this.configs()) {
      const { files } = await scan(pathPattern(dvr.path));
      for (const f of files) {
        let path = f.path;
        if (f.partial) {
          if (this.catalogue.has(key(path.slice(0, -4)))) continue;
          if (!(await recover(path))) continue;
          path = path.slice(0, -4);
          this.deps.log.info(`dvr: recovered ${path} (left unfinished by a process that stopped while recording it)`);
        }
        if (this.catalogue.has(key(path))) continue;
        this.remember({
          vhost: f.vars.vhost ?? vhost, app: f.vars.app ?? '', stream: f.vars.stream ?? '', file: path, container: containerOf(path),
          state: 'done', startMs: null, durationMs: null, bytes: f.bytes, codecs: [], endMs: Math.round(f.mtimeMs),
        });
      }
    }
    this.sweep();
  }

  /** Retention: one pass at a time; a request during a pass runs one more after it. */
  private sweep(): void {
    if (this.sweeping !== null) {
      this.sweepAgain = true;
      return;
    }
    this.sweeping = this.retain().finally(() => {
      this.sweeping = null;
      if (this.sweepAgain && !this.closed) {
        this.sweepAgain = false;
        this.sweep();
      }
    });
  }

  private async retain(): Promise<void> {
    for (const { dvr } of this.configs()) {
      if (dvr.maxAgeMs <= 0 && dvr.maxBytes <= 0) continue;
      const { files, truncated } = await scan(pathPattern(dvr.path));
      if (truncated) this.deps.log.warn(`dvr: retention of ${dvr.path} saw only the first files of a very large tree`);
      // Files this process is writing are partial (.tmp); a finished one being listed is fair game.
      for (const f of victims(files, dvr.maxAgeMs, dvr.maxBytes, Date.now())) {
        if (!(await remove(f.path))) continue;
        this.catalogue.delete(key(f.path));
        this.deps.log.info(`dvr: retention deleted ${f.path} (${f.bytes} bytes, finished ${new Date(f.mtimeMs).toISOString()})`);
      }
    }
  }
}

function key(file: string): string {
  return resolve(file);
}

