/**
 * Recording (SRS's `dvr` block) as the config parser builds it (src/config/schema.ts) and the
 * recorder reads it. Plain data: parsed once, swapped whole on reload.
 */

export type DvrPlan = 'session' | 'segment';
export type DvrJitter = 'full' | 'zero' | 'off';
export type DvrContainer = 'flv' | 'mp4';

export interface DvrConfig {
  /** SRS default: off. */
  enabled: boolean;
  /** `all`, or the `app/stream` names that are recorded (SRS dvr_apply). */
  apply: 'all' | readonly string[];
  /** session: one file per publish; segment: a new file every `durationMs` (at a key frame when waitKeyframe). */
  plan: DvrPlan;
  /**
   * The file name template with SRS's variables ([vhost] [app] [stream] [timestamp] [2006] [01]
   * [02] [15] [04] [05] [999]); its extension picks the container. A path without .flv/.mp4 is a
   * directory that gets SRS 1's `[app]/[stream].[timestamp].flv` appended.
   */
  path: string;
  /** SRS dvr_duration (default 30 s): the segment plan's file length. */
  durationMs: number;
  /** SRS dvr_wait_keyframe (default on): the segment plan cuts only at a video key frame. */
  waitKeyframe: boolean;
  /** SRS dvr time_jitter (default full): each file starts at 0 and never jumps (full), only starts at 0 (zero), or keeps the publisher's clock (off). */
  timeJitter: DvrJitter;
  /** streamgate: finished recordings older than this are deleted (0 = kept; MediaMTX's recordDeleteAfter). */
  maxAgeMs: number;
  /** streamgate: the oldest finished recordings are deleted while this vhost's recordings hold more bytes (0 = no bound). */
  maxBytes: number;
}

/** SRS 1's rule for a dvr_path that names only a directory. */
export const SRS1_FILE_NAME = '[app]/[stream].[timestamp].flv';
/** SRS's default dvr_path. */
export const DEFAULT_DVR_PATH = `./objs/nginx/html/${SRS1_FILE_NAME}`;

export function defaultDvrConfig(): DvrConfig {
  return { enabled: false, apply: 'all', plan: 'session', path: DEFAULT_DVR_PATH, durationMs: 30_000, waitKeyframe: true, timeJitter: 'full', maxAgeMs: 0, maxBytes: 0 };
}

/** One recording as the API lists it. */
export interface RecordingInfo {
  vhost: string;
  app: string;
  stream: string;
  /** The file's path as dvr_path makes it (relative to the working directory when dvr_path is). */
  file: string;
  container: DvrContainer;
  /** recording: being written (its bytes on disk end in .tmp); done: finished. */
  state: 'recording' | 'done';
  /** Wall-clock start (ms since 1970); for files found on disk at start-up, their modification time less nothing known: null. */
  startMs: number | null;
  /** Media duration in ms (null when unknown: a file found on disk). */
  durationMs: number | null;
  bytes: number;
  /** Codec names (h264, hevc, aac, mp3), empty when unknown. */
  codecs: string[];
  /** Finished (or found) time, ms since 1970; null while recording. */
  endMs: number | null;
}
