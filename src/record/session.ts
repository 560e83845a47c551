import type { MediaPacket } from '../media/packet.js';
import { VIDEO_AVC, VIDEO_HEVC, AUDIO_AAC, AUDIO_MP3 } from '../media/packet.js';
import { JitterCorrector } from '../live/timeline.js';
import type { Batch, EndReason, Sink, StreamName } from '../live/types.js';
import { containerOf, expandPath, tmpPathOf } from './path.js';
import { QueuedFile } from './writer.js';
import type { FileEncoder, Headers, Timed } from './flv-file.js';
import type { DvrConfig, RecordingInfo } from './types.js';

/** After a failed or dropped file, the next one is tried no sooner than this (then at a key frame). */
export const DVR_RETRY_MS = 2000;
/**
 * A timestamp this far below the file's 0 is a packet from before its first key frame (audio
 * interleaved a few ms early), not a wrap of the 32-bit clock 49 days on: it is written at 0.
 */
const BEFORE_ORIGIN = 0xc0000000;

/** A track first seen this far into a file starts a new file (see header()). */
export const LATE_TRACK_MS = 1000;

export interface SessionDeps {
  name: StreamName;
  config: DvrConfig;
  /** The stream carries video (declared or seen): files then start at a key frame. */
  hasVideo: () => boolean;
  /** Makes the container for a new file (FLV or MP4); null when that container cannot take these tracks. */
  encoder: (container: 'flv' | 'mp4', headers: Headers) => FileEncoder | null;
  /** One line per episode: a recording stopped (and why), or resumed. */
  warn: (line: string) => void;
  info: (line: string) => void;
  /** A file began (the API lists it while it is written). */
  opened: (r: RecordingInfo) => void;
  /** A file is finished and renamed (or failed with nothing in it: `kept` false). */
  finished: (r: RecordingInfo, kept: boolean) => void;
  now?: () => number;
}

interface Current {
  file: QueuedFile;
  enc: FileEncoder;
  finalPath: string;
  info: RecordingInfo;
  /** Source time (after dvr time_jitter's correction) that is this file's 0. */
  origin: number;
  firstT: number;
  lastT: number;
}

/**
 * One stream's recording: an internal sink of its source that cuts files by SRS's plans. It
 * never pushes back on the source (backlog 0): its own queue is bounded instead, and a disk that
 * falls behind costs the recording, never the players.
 */
export class StreamRecording implements Sink {
  private headers: Headers = { video: null, audio: null };
  private current: Current | null = null;
  private readonly jitter: JitterCorrector | null;
  private retryAt = 0;
  /** A failure was logged and no file has reached the disk since. */
  private failing = false;
  private ended = false;
  private readonly closing = new Set<Promise<void>>();
  private readonly now: () => number;
  private lastStartMs = -1;
  /** "Recorded without its audio" was logged (once per publish, not once per segment). */
  private warnedTrack = false;

  constructor(private readonly deps: SessionDeps) {
    this.jitter = deps.config.timeJitter === 'full' ? new JitterCorrector() : null;
    this.now = deps.now ?? Date.now;
  }

  backlog(): number {
    return 0;
  }

  write(batch: Batch): void {
    if (this.ended) return;
    let run: Timed[] = [];
    for (const p of batch.packets) {
      if (p.kind === 'script') {
        // The publisher's onMetaData, for the next FLV file's own (SRS copies it likewise).
        this.headers = { ...this.headers, meta: p };
        continue;
      }
      // MP3 has no sequence header: its first frame stands for one (the track exists, this codec).
      const stands = p.kind === 'audio' && !p.header && p.codec !== AUDIO_AAC && this.headers.audio?.codec !== p.codec;
      if (p.header || stands) {
        this.header(p, run);
        run = [];
        if (p.header) continue;
      }
      const raw = this.jitter ? this.jitter.correct(p.dts) : p.dts >>> 0;
      if (this.current && this.shouldCut(p, raw)) {
        this.flush(run);
        run = [];
        this.finish();
      }
      if (!this.current && !this.start(p, raw)) continue;
      const cur = this.current!;
      const t = this.fileTime(cur, raw);
      cur.lastT = Math.max(cur.lastT, t);
      run.push({ p, t });
    }
    this.flush(run);
  }

  end(_reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.finish();
  }

  /** Resolves when every file this recording opened is closed (shutdown waits on it). */
  async settled(): Promise<void> {
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }

  /** A sequence header: kept for the next file; a different one mid-file (a codec change) ends the file. */
  private header(p: MediaPacket, run: Timed[]): void {
    const slot = p.kind === 'video' ? 'video' : 'audio';
    const old = this.headers[slot];
    this.headers = { ...this.headers, [slot]: p };
    if (!this.current) return;
    // What came before the header belongs to the file as it is (the caller starts a new run).
    this.flush(run);
    if (old && !old.data.equals(p.data)) this.finish();
    // A track that appears after the file began is not in its header (FLV flags, MP4 moov):
    // a new file has it. One that appears at once (MP3's first frame after the first key
    // frame) is written into the file it joins.
    else if (!old && this.current.lastT - this.current.firstT >= LATE_TRACK_MS) this.finish();
    else if (!old) this.joinTrack(p);
  }

  /** A track that appears at once joins the file: the API then lists its codec, or a line says the file goes on without it. */
  private joinTrack(p: MediaPacket): void {
    const cur = this.current!;
    if (cur.enc.join?.(p) ?? true) cur.info.codecs = codecNames(this.headers);
    else this.warnWithout(p.kind === 'video' ? 'video' : 'audio', `it came after the ${cur.info.container.toUpperCase()} file began`);
  }

  private warnWithout(kind: 'video' | 'audio', why: string): void {
    if (this.warnedTrack) return;
    this.warnedTrack = true;
    this.deps.warn(`dvr: ${label(this.deps.name)} is recorded without its ${kind}: ${why}`);
  }

  private shouldCut(p: MediaPacket, raw: number): boolean {
    const cfg = this.deps.config;
    const cur = this.current!;
    if (cfg.plan !== 'segment') return false;
    if (this.fileTime(cur, raw) - cur.firstT < cfg.durationMs) return false;
    if (!cfg.waitKeyframe) return true;
    return this.deps.hasVideo() ? p.kind === 'video' && p.keyframe : p.kind === 'audio';
  }

  private fileTime(cur: Current, raw: number): number {
    if (this.deps.config.timeJitter === 'off') return raw;
    const t = (raw - cur.origin) >>> 0;
    return t >= BEFORE_ORIGIN ? 0 : t;
  }

  /** Opens a file when `p` may begin one: a key frame (or audio, without video), past any retry wait. */
  private start(p: MediaPacket, raw: number): boolean {
    if (this.now() < this.retryAt) return false;
    const video = this.deps.hasVideo();
    if (video ? !(p.kind === 'video' && p.keyframe && this.headers.video) : p.kind !== 'audio') return false;
    if (p.kind === 'video' && p.codec !== VIDEO_AVC && p.codec !== VIDEO_HEVC) return false;
    const cfg = this.deps.config;
    const container = containerOf(cfg.path);
    const enc = this.deps.encoder(container, this.headers);
    if (!enc) {
      this.retryAt = Number.POSITIVE_INFINITY;
      this.deps.warn(`dvr: ${label(this.deps.name)} is not recorded: ${container.toUpperCase()} cannot hold its codecs (${codecNames(this.headers).join(', ')})`);
      return false;
    }
    const held = enc.withoutAudio ? { ...this.headers, audio: null } : this.headers;
    if (enc.withoutAudio) this.warnWithout('audio', `${container.toUpperCase()} cannot hold it (${codecNames(this.headers).join(', ')})`);
    // Never the same millisecond as the file before: [timestamp] names the file, and a batch that
    // spans two segment cuts (a publisher faster than real time, or a stalled event loop) opened
    // both in one millisecond, the second file overwriting the first under the same name.
    const startMs = Math.max(this.now(), this.lastStartMs + 1);
    this.lastStartMs = startMs;
    const finalPath = expandPath(cfg.path, this.deps.name, new Date(startMs));
    const info: RecordingInfo = {
      vhost: this.deps.name.vhost, app: this.deps.name.app, stream: this.deps.name.stream, file: finalPath, container,
      state: 'recording', startMs, durationMs: 0, bytes: 0, codecs: codecNames(held), endMs: null,
    };
    const file = new QueuedFile(tmpPathOf(finalPath), (err) => this.failed(file, err));
    const origin = cfg.timeJitter === 'off' ? 0 : raw;
    const t0 = cfg.timeJitter === 'off' ? raw : 0;
    this.current = { file, enc, finalPath, info, origin, firstT: t0, lastT: t0 };
    const head = enc.begin();
    if (head.length > 0) file.write(head);
    this.deps.opened(info);
    return true;
  }

  /** Queues a run of packets; past the queue's bound the file is dropped (the disk is slower than the stream). */
  private flush(run: Timed[]): void {
    const cur = this.current;
    if (!cur || run.length === 0) return;
    const bytes = cur.enc.add(run);
    cur.info.durationMs = cur.lastT - cur.firstT;
    if (bytes.length > 0 && !cur.file.write(bytes)) {
      if (cur.file.error) return;
      this.stopEpisode(`the disk is slower than the stream (${cur.file.queued} bytes queued)`);
      this.finish();
      return;
    }
    cur.info.bytes = cur.file.length;
    if (this.failing && cur.file.written > 0) {
      this.failing = false;
      this.deps.info(`dvr: recording ${label(this.deps.name)} resumed in ${cur.finalPath}`);
    }
  }

  private failed(file: QueuedFile, err: NodeJS.ErrnoException): void {
    this.stopEpisode(`${err.code ?? err.message} writing ${file.path}`);
    if (this.current?.file === file) this.finish();
  }

  private stopEpisode(why: string): void {
    this.retryAt = this.now() + DVR_RETRY_MS;
    if (this.failing) return;
    this.failing = true;
    this.deps.warn(`dvr: recording ${label(this.deps.name)} stopped: ${why}; the live stream goes on and recording resumes when writing works again`);
  }

  /** Ends the current file: fills in its duration, closes it, renames it to its final name. */
  private finish(): void {
    const cur = this.current;
    if (!cur) return;
    this.current = null;
    const durationMs = cur.lastT - cur.firstT;
    const { tail, patches } = cur.enc.end(durationMs);
    if (tail.length > 0) cur.file.write(tail);
    for (const x of patches) cur.file.patch(x.at, x.data);
    const done = cur.file.close(cur.finalPath).then(() => {
      const kept = cur.file.written > 0;
      Object.assign(cur.info, { state: 'done', durationMs, bytes: cur.file.written, endMs: this.now() });
      this.deps.finished(cur.info, kept);
    });
    this.closing.add(done);
    void done.finally(() => this.closing.delete(done));
  }
}

function label(n: StreamName): string {
  return `${n.app}/${n.stream}`;
}

function codecNames(h: Headers): string[] {
  const out: string[] = [];
  if (h.video) out.push(h.video.codec === VIDEO_HEVC ? 'hevc' : h.video.codec === VIDEO_AVC ? 'h264' : `video-${h.video.codec}`);
  if (h.audio) out.push(h.audio.codec === AUDIO_AAC ? 'aac' : h.audio.codec === AUDIO_MP3 ? 'mp3' : `audio-${h.audio.codec}`);
  return out;
}
