/**
 * From hub packets to fMP4 tracks and samples: video read through `videoFrame` (whatever FLV
 * flavour carried it), AAC through its AudioSpecificConfig, MP3 (opt-in) through its first frame.
 * A sample's duration is the distance to the next one of its track, so the last sample of each
 * track waits until the next arrives or the caller cuts (`take`), where the cut time (video) or
 * the codec's frame length (audio) gives it. Pure: packets in, samples out.
 */
import { AacError, FLV_AAC_PREFIX_BYTES, parseAudioSpecificConfig } from '../aac.js';
import { Av1Error, parseAv1c } from '../av1.js';
import { AvcError, parseAvcConfig } from '../avc.js';
import { HevcError, parseHvcc } from '../hevc.js';
import { wholeLayer3Frame } from '../mp3.js';
import { AUDIO_AAC, AUDIO_MP3, type MediaPacket } from '../packet.js';
import { TimestampUnwrapper } from '../ts/muxer.js';
import { videoFrame } from '../video.js';
import type { Mp4Run, Mp4Sample, Mp4Track } from './types.js';

export const VIDEO_TIMESCALE = 90_000;
/** Samples per AAC frame (ISO/IEC 14496-3: 1024 for AAC LC and the core of HE-AAC). */
const AAC_FRAME_SAMPLES = 1024;
/** Samples held between cuts, per track: a caller that never cuts still holds a bounded amount. */
export const MAX_PENDING_SAMPLES = 8192;

interface Lane {
  track: Mp4Track;
  done: Mp4Sample[];
  last: Mp4Sample | null;
  /** The last step between two samples, in the track's timescale: the estimate for a cut sample. */
  step: number;
}

export class Mp4Remuxer {
  private video: Lane | null = null;
  private audio: Lane | null = null;
  private readonly clock = new TimestampUnwrapper();
  /** Unwrapped ms of the first frame: the fragments' timeline starts at 0 there. */
  private zeroMs = -1;
  /**
   * A configuration record changed mid-stream (samples held under the old one are dropped): the
   * caller needs a new init segment. The caller clears it.
   */
  configChanged = false;
  /** Samples dropped because no cut came for MAX_PENDING_SAMPLES. */
  dropped = 0;

  constructor(
    private readonly wantVideo: boolean,
    private readonly wantAudio: boolean,
  ) {}

  /** The tracks once every expected configuration has arrived; null before. */
  tracks(): Mp4Track[] | null {
    if ((this.wantVideo && !this.video) || (this.wantAudio && !this.audio)) return null;
    const t: Mp4Track[] = [];
    if (this.video) t.push(this.video.track);
    if (this.audio) t.push(this.audio.track);
    return t.length > 0 ? t : null;
  }

  /** Milliseconds on the fragments' timeline of a packet time; the first frame is 0. */
  timeOf(p: MediaPacket): number {
    const ms = this.clock.unwrap(p.dts);
    if (this.zeroMs < 0) this.zeroMs = ms;
    return Math.max(0, ms - this.zeroMs);
  }

  /**
   * Takes a packet whose timeline time (`timeOf`) is `ms`. Returns true for a coded frame that
   * became a sample; configuration records set up their track.
   */
  push(p: MediaPacket, ms: number): boolean {
    if (p.kind === 'video') {
      const f = videoFrame(p);
      if (!f || f.part === 'end') return false;
      if (f.part === 'config') {
        this.setVideo(f.codec, f.body);
        return false;
      }
      if (!this.video) return false;
      const dts = Math.round(ms * (VIDEO_TIMESCALE / 1000));
      this.add(this.video, { dts, cts: Math.round(f.cts * (VIDEO_TIMESCALE / 1000)), duration: 0, key: f.key, data: f.body });
      return true;
    }
    if (p.kind !== 'audio') return false;
    if (p.codec === AUDIO_MP3) return this.pushMp3(p, ms);
    if (p.codec !== AUDIO_AAC || p.data.length <= FLV_AAC_PREFIX_BYTES) return false;
    const body = p.data.subarray(FLV_AAC_PREFIX_BYTES);
    if (p.header) {
      this.setAudio(body);
      return false;
    }
    if (this.audio?.track.codec !== 'aac') return false;
    const dts = Math.round((ms * this.audio.track.timescale) / 1000);
    this.add(this.audio, { dts, cts: 0, duration: 0, key: true, data: body });
    return true;
  }

  /**
   * MP3 has no configuration record: the first frame's header gives the track (rate, channels).
   * Opt-in: only a caller that hands a frame here gets MP3 samples; until then MP3 packets are
   * ignored, as before (HLS fMP4 does not call it: players' MP3-in-fMP4 support is untested there).
   * False when the frame is not a whole Layer III frame with a known length: no track then.
   */
  setMp3(frame: Buffer): boolean {
    const h = wholeLayer3Frame(frame);
    if (!h) return false;
    const old = this.audio?.track;
    if (old?.codec === 'mp3' && old.timescale === h.sampleRate && old.channels === h.channels) return true;
    const track: Mp4Track = { id: 2, kind: 'audio', codec: 'mp3', timescale: h.sampleRate, config: Buffer.alloc(0), sampleRate: h.sampleRate, channels: h.channels };
    if (this.audio) this.configChanged = true;
    this.audio = { track, done: [], last: null, step: h.samplesPerFrame };
    return true;
  }

  /** An MP3 frame (after FLV's one-byte prefix) into an MP3 track: frames a decoder would choke on are left out. */
  private pushMp3(p: MediaPacket, ms: number): boolean {
    if (this.audio?.track.codec !== 'mp3') return false;
    const body = p.data.subarray(1);
    if (!wholeLayer3Frame(body)) return false;
    const dts = Math.round((ms * this.audio.track.timescale) / 1000);
    this.add(this.audio, { dts, cts: 0, duration: 0, key: true, data: body });
    return true;
  }

  /**
   * Every sample so far as runs (video first), the held last samples included: video's ends at
   * `untilMs` when that is after it (the cut is the next frame's time), others last a step.
   */
  take(untilMs?: number): Mp4Run[] {
    const runs: Mp4Run[] = [];
    for (const lane of [this.video, this.audio]) {
      if (!lane) continue;
      const last = lane.last;
      if (last) {
        const until = untilMs === undefined ? -1 : Math.round((untilMs * lane.track.timescale) / 1000);
        last.duration = lane === this.video && until > last.dts ? until - last.dts : lane.step;
        lane.done.push(last);
        lane.last = null;
      }
      if (lane.done.length > 0) runs.push({ track: lane.track, samples: lane.done });
      lane.done = [];
    }
    return runs;
  }

  /** Whether any sample is held (a cut now would produce a fragment). */
  get holding(): boolean {
    return !!(this.video?.last || this.video?.done.length || this.audio?.last || this.audio?.done.length);
  }

  private add(lane: Lane, s: Mp4Sample): void {
    const last = lane.last;
    if (last) {
      // Timestamps that go backwards or repeat get the last step rather than a negative duration.
      const d = s.dts - last.dts;
      if (d > 0) lane.step = d;
      last.duration = d > 0 ? d : lane.step;
      if (lane.done.length >= MAX_PENDING_SAMPLES) {
        lane.done.shift();
        this.dropped++;
      }
      lane.done.push(last);
    }
    lane.last = s;
  }

  private setVideo(codec: 'avc' | 'hevc' | 'av1', config: Buffer): void {
    if (config.length === 0) return;
    if (this.video && this.video.track.codec === codec && this.video.track.config.equals(config)) return;
    let width: number | undefined;
    let height: number | undefined;
    try {
      ({ width, height } = codec === 'avc' ? parseAvcConfig(config) : codec === 'hevc' ? parseHvcc(config) : parseAv1c(config));
    } catch (e) {
      if (!(e instanceof AvcError || e instanceof HevcError || e instanceof Av1Error)) throw e;
      return; // not a record a decoder could use either
    }
    const track: Mp4Track = { id: 1, kind: 'video', codec, timescale: VIDEO_TIMESCALE, config: Buffer.from(config), width, height };
    // Encoders repeat the same record (OBS at every reconnect); a different one needs a new init segment.
    if (this.video) this.configChanged = true;
    this.video = { track, done: [], last: null, step: this.video?.step ?? Math.round(VIDEO_TIMESCALE / 25) };
  }

  private setAudio(config: Buffer): void {
    if (this.audio?.track.config.equals(config)) return;
    try {
      const c = parseAudioSpecificConfig(config);
      const track: Mp4Track = { id: 2, kind: 'audio', codec: 'aac', timescale: c.sampleRate, config: Buffer.from(config), sampleRate: c.sampleRate, channels: c.channels };
      if (this.audio) this.configChanged = true;
      this.audio = { track, done: [], last: null, step: AAC_FRAME_SAMPLES };
    } catch (e) {
      if (!(e instanceof AacError)) throw e;
    }
  }
}
