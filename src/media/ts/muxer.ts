import { AUDIO_AAC, AUDIO_MP3, type MediaPacket } from '../packet.js';
import { adtsHeader, FLV_AAC_PREFIX_BYTES, parseAudioSpecificConfig, type AacConfig } from '../aac.js';
import { parseAvcConfig } from '../avc.js';
import { hevcNalType, NAL_AUD as HEVC_AUD, NAL_IRAP_FIRST, NAL_IRAP_LAST, NAL_VPS, parseHvcc } from '../hevc.js';
import { videoFrame } from '../video.js';
import { pat, PID_AUDIO, PID_PAT, PID_PMT, PID_VIDEO, pmt, videoOf, type TsTracks } from './tables.js';

export { PID_AUDIO, PID_PAT, PID_PMT, PID_VIDEO, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_H265, STREAM_TYPE_MPEG1_AUDIO, type TsTracks } from './tables.js';

/**
 * FLV packets → MPEG-TS (ISO/IEC 13818-1), the container of HLS segments (RFC 8216 §3.2) and of
 * live .ts streams. Pure: MediaPackets in, 188-byte packets out; it knows nothing of HTTP or
 * playlists. One muxer per output stream, because continuity counters are per output.
 */

export const TS_PACKET_BYTES = 188;

const STREAM_ID_VIDEO = 0xe0;
const STREAM_ID_AUDIO = 0xc0;
/** PTS/DTS and PCR base run at 90 kHz and wrap at 2^33 (13818-1 §2.4.3.7). */
const CLOCK_PER_MS = 90;
const WRAP_33 = 2 ** 33;
/** How often the PCR PID carries a PCR besides at key frames: 13818-1 asks for at most 100 ms. */
const PCR_INTERVAL_MS = 100;
/** Access unit delimiter, primary_pic_type 7 (any slice type): Apple's HLS spec wants one per frame. */
const AUD = Buffer.from([0, 0, 0, 1, 0x09, 0xf0]);
const START_CODE = Buffer.from([0, 0, 0, 1]);
const NAL_SPS = 7;
const NAL_AUD = 9;
/**
 * H.265 access unit delimiter (§7.3.2.5): NAL type 35, layer 0, temporal id 1, pic_type 2 (any
 * slice type) and the stop bit. Apple's HLS authoring spec wants one per frame as for H.264.
 */
const HEVC_AUD_NAL = Buffer.from([0, 0, 0, 1, HEVC_AUD << 1, 0x01, 0x50]);

export class TsError extends Error {}

/**
 * FLV timestamps are 32-bit milliseconds and wrap after 49.7 days; this turns them into a
 * monotonic count so that durations and PTS stay right across the wrap (a late packet from
 * before the wrap stays before it).
 */
export class TimestampUnwrapper {
  private last = -1;
  private epoch = 0;

  unwrap(ms: number): number {
    const t = ms >>> 0;
    let v = t + this.epoch;
    if (this.last >= 0) {
      if (v < this.last - 2 ** 31) v += 2 ** 32;
      else if (v > this.last + 2 ** 31) v -= 2 ** 32;
    }
    if (v > this.last) {
      this.last = v;
      this.epoch = v - t;
    }
    return v;
  }
}

/** Milliseconds (unwrapped) → the 33-bit 90 kHz clock. */
export function toClock90k(ms: number): number {
  return (Math.round(ms * CLOCK_PER_MS) % WRAP_33 + WRAP_33) % WRAP_33;
}

export interface TsMuxerOptions {
  /** Repeat PAT/PMT before every key frame, so a player can join a continuous stream anywhere. */
  tablesAtKeyframes?: boolean;
}

export class TsMuxer {
  private readonly cc = new Map<number, number>();
  private pmtVersion = 0;
  /** Parameter sets of the current configuration record, in the order a decoder needs them. */
  private paramSets: Buffer[] = [];
  private paramCodec: 'avc' | 'hevc' | null = null;
  private nalLengthSize = 4;
  private aac: AacConfig | null = null;
  private readonly clock = new TimestampUnwrapper();
  private lastPcrMs = -Infinity;
  private pcrDue = true;
  /** Frames that could not be remuxed (malformed, or before their codec config). */
  dropped = 0;

  constructor(
    private tracksNow: TsTracks,
    private readonly options: TsMuxerOptions = {},
  ) {}

  get tracks(): TsTracks {
    return this.tracksNow;
  }

  /** Changes the program's streams; the next tables() carries a new PMT version. */
  setTracks(t: TsTracks): void {
    if (t.video === this.tracksNow.video && t.audio === this.tracksNow.audio && videoOf(t) === videoOf(this.tracksNow)) return;
    this.tracksNow = { ...t };
    this.pmtVersion = (this.pmtVersion + 1) & 0x1f;
  }

  private get pcrPid(): number {
    return this.tracksNow.video ? PID_VIDEO : PID_AUDIO;
  }

  /** PAT and PMT, two TS packets. HLS wants them at the start of every segment (RFC 8216 §3.2). */
  tables(): Buffer {
    this.pcrDue = true;
    return Buffer.concat([this.section(PID_PAT, pat()), this.section(PID_PMT, pmt(this.tracksNow, this.pcrPid, this.pmtVersion))]);
  }

  /** Remuxes a run of packets into one Buffer. */
  muxAll(pkts: readonly MediaPacket[]): Buffer {
    const out: Buffer[] = [];
    for (const p of pkts) {
      const b = this.mux(p);
      if (b.length > 0) out.push(b);
    }
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** One packet: a sequence header updates the codec config and yields nothing; a frame yields one PES. */
  mux(p: MediaPacket): Buffer {
    if (p.kind === 'video') return this.video(p);
    if (p.kind === 'audio') return this.audio(p);
    return EMPTY;
  }

  private video(p: MediaPacket): Buffer {
    const f = videoFrame(p);
    if (!f || f.codec === 'av1') return EMPTY;
    if (f.part === 'config') {
      this.configure(f.codec, f.body);
      return EMPTY;
    }
    if (f.part !== 'frame' || !this.tracksNow.video || f.codec !== videoOf(this.tracksNow)) return EMPTY;
    // H.264 frames before any avcC are read with the usual 4-byte lengths (as before HEVC came);
    // an H.265 frame needs its hvcC, or a record of the other codec would give it wrong lengths.
    const known = f.codec === this.paramCodec || (this.paramCodec === null && f.codec === 'avc');
    const nals = known ? splitAvcc(f.body, this.nalLengthSize) : null;
    if (!nals) {
      this.dropped++;
      return EMPTY;
    }
    const parts = f.codec === 'avc' ? this.avcAccessUnit(nals, p.keyframe) : this.hevcAccessUnit(nals);
    const dtsMs = this.clock.unwrap(p.dts);
    const ptsMs = dtsMs + f.cts;
    const prefix = p.keyframe && this.options.tablesAtKeyframes ? this.tables() : EMPTY;
    const pes = this.pes(PID_VIDEO, STREAM_ID_VIDEO, Buffer.concat(parts), ptsMs, dtsMs, p.keyframe);
    return prefix.length > 0 ? Buffer.concat([prefix, pes]) : pes;
  }

  /** Keeps a configuration record's parameter sets and NAL length size for the frames that follow. */
  private configure(codec: 'avc' | 'hevc', record: Buffer): void {
    try {
      const c = codec === 'avc' ? parseAvcConfig(record) : parseHvcc(record);
      this.paramSets = 'vps' in c ? [...c.vps, ...c.sps, ...c.pps] : [...c.sps, ...c.pps];
      this.nalLengthSize = c.nalLengthSize;
      this.paramCodec = codec;
    } catch {
      this.dropped++;
    }
  }

  private avcAccessUnit(nals: Buffer[], key: boolean): Buffer[] {
    const parts: Buffer[] = [AUD];
    if (key && !nals.some((n) => (n[0] & 0x1f) === NAL_SPS)) {
      // ffmpeg's and OBS's FLV carry SPS/PPS only in the sequence header; a TS decoder joining at
      // this IDR needs them in band (Apple HLS authoring spec: parameter sets before each IDR).
      for (const s of this.paramSets) parts.push(START_CODE, s);
    }
    for (const n of nals) {
      if ((n[0] & 0x1f) === NAL_AUD) continue;
      parts.push(START_CODE, n);
    }
    return parts;
  }

  /**
   * The same for H.265: VPS, SPS and PPS from hvcC before an IRAP picture (NAL types 16..23) that
   * does not carry them, since Enhanced FLV, like legacy FLV, keeps them in the sequence start.
   */
  private hevcAccessUnit(nals: Buffer[]): Buffer[] {
    const parts: Buffer[] = [HEVC_AUD_NAL];
    const irap = nals.some((n) => hevcNalType(n) >= NAL_IRAP_FIRST && hevcNalType(n) <= NAL_IRAP_LAST);
    if (irap && !nals.some((n) => hevcNalType(n) === NAL_VPS)) {
      for (const s of this.paramSets) parts.push(START_CODE, s);
    }
    for (const n of nals) {
      if (hevcNalType(n) === HEVC_AUD) continue;
      parts.push(START_CODE, n);
    }
    return parts;
  }

  private audio(p: MediaPacket): Buffer {
    const want = this.tracksNow.audio;
    if (p.codec === AUDIO_AAC) {
      if (p.data.length < FLV_AAC_PREFIX_BYTES) return EMPTY;
      const body = p.data.subarray(FLV_AAC_PREFIX_BYTES);
      if (p.header) {
        try {
          this.aac = parseAudioSpecificConfig(body);
        } catch {
          this.dropped++;
        }
        return EMPTY;
      }
      if (want !== 'aac') return EMPTY;
      if (!this.aac || body.length + 7 > 0x1fff) {
        this.dropped++;
        return EMPTY;
      }
      const ms = this.clock.unwrap(p.dts);
      return this.pes(PID_AUDIO, STREAM_ID_AUDIO, Buffer.concat([adtsHeader(this.aac, body.length), body]), ms, ms, false);
    }
    if (p.codec === AUDIO_MP3 && want === 'mp3' && p.data.length > 1) {
      const ms = this.clock.unwrap(p.dts);
      return this.pes(PID_AUDIO, STREAM_ID_AUDIO, p.data.subarray(1), ms, ms, false);
    }
    return EMPTY;
  }

  private nextCc(pid: number): number {
    const c = this.cc.get(pid) ?? 15;
    const n = (c + 1) & 0xf;
    this.cc.set(pid, n);
    return n;
  }

  /** A PSI section in one TS packet: pointer_field 0, the section, 0xFF fill (13818-1 §2.4.4). */
  private section(pid: number, sec: Buffer): Buffer {
    const b = Buffer.alloc(TS_PACKET_BYTES, 0xff);
    b[0] = 0x47;
    b[1] = 0x40 | (pid >> 8); // payload_unit_start_indicator
    b[2] = pid & 0xff;
    b[3] = 0x10 | this.nextCc(pid);
    b[4] = 0;
    sec.copy(b, 5);
    return b;
  }

  /**
   * One PES packet (13818-1 §2.4.3.6) cut into TS packets. The first carries the adaptation field
   * with the random access indicator and PCR when due; the last is padded with adaptation-field
   * stuffing, since PES payload may not be padded any other way in TS.
   */
  private pes(pid: number, streamId: number, payload: Buffer, ptsMs: number, dtsMs: number, randomAccess: boolean): Buffer {
    const withDts = ptsMs !== dtsMs;
    const hdrLen = withDts ? 10 : 5;
    const pesLen = 3 + hdrLen + payload.length;
    const head = Buffer.allocUnsafe(9 + hdrLen);
    head.writeUIntBE(0x000001, 0, 3);
    head[3] = streamId;
    // Video may say 0 (unbounded) in TS; audio PES always fits.
    head.writeUInt16BE(pesLen > 0xffff || streamId === STREAM_ID_VIDEO ? 0 : pesLen, 4);
    head[6] = 0x84; // '10', data_alignment_indicator
    head[7] = withDts ? 0xc0 : 0x80;
    head[8] = hdrLen;
    writeTimestamp(head, 9, withDts ? 3 : 2, toClock90k(ptsMs));
    if (withDts) writeTimestamp(head, 14, 1, toClock90k(dtsMs));

    let pcr = -1;
    if (pid === this.pcrPid && (randomAccess || this.pcrDue || dtsMs - this.lastPcrMs >= PCR_INTERVAL_MS || dtsMs < this.lastPcrMs)) {
      pcr = toClock90k(dtsMs);
      this.lastPcrMs = dtsMs;
      this.pcrDue = false;
    }
    const flags = (randomAccess ? 0x40 : 0) | (pcr >= 0 ? 0x10 : 0);
    const firstAf = flags ? 2 + (pcr >= 0 ? 6 : 0) : 0;
    const total = head.length + payload.length;
    const firstRoom = 184 - firstAf;
    const count = 1 + Math.ceil(Math.max(0, total - firstRoom) / 184);
    const out = Buffer.allocUnsafe(count * TS_PACKET_BYTES);
    let taken = 0;
    const copy = (dst: number, n: number) => {
      // The PES header then the payload, as if they were one buffer.
      let left = n;
      while (left > 0) {
        if (taken < head.length) {
          const k = Math.min(left, head.length - taken);
          head.copy(out, dst, taken, taken + k);
          dst += k;
          taken += k;
          left -= k;
        } else {
          const from = taken - head.length;
          payload.copy(out, dst, from, from + left);
          taken += left;
          left = 0;
        }
      }
    };
    for (let i = 0; i < count; i++) {
      const o = i * TS_PACKET_BYTES;
      const first = i === 0;
      const baseAf = first ? firstAf : 0;
      const room = 184 - baseAf;
      const n = Math.min(room, total - taken);
      const stuff = room - n;
      const afLen = baseAf + stuff;
      out[o] = 0x47;
      out[o + 1] = (first ? 0x40 : 0) | (pid >> 8);
      out[o + 2] = pid & 0xff;
      out[o + 3] = (afLen > 0 ? 0x30 : 0x10) | this.nextCc(pid);
      let w = o + 4;
      if (afLen > 0) {
        out[w++] = afLen - 1; // adaptation_field_length excludes itself
        if (afLen > 1) {
          out[w++] = baseAf > 0 ? flags : 0;
          if (baseAf > 0 && pcr >= 0) {
            writePcr(out, w, pcr);
            w += 6;
          }
          out.fill(0xff, w, w + afLen - (baseAf > 0 ? baseAf : 2));
          w += afLen - (baseAf > 0 ? baseAf : 2);
        }
      }
      copy(w, n);
    }
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** AVCC (length-prefixed NAL units, 14496-15 §5.3.4.2) → NAL units; null if a length overruns. */
export function splitAvcc(b: Buffer, lengthSize: number): Buffer[] | null {
  const out: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    if (at + lengthSize > b.length) return null;
    const len = b.readUIntBE(at, lengthSize);
    at += lengthSize;
    if (len === 0) continue;
    if (at + len > b.length) return null;
    out.push(b.subarray(at, at + len));
    at += len;
  }
  return out;
}

/** 33-bit timestamp with its 4-bit prefix and marker bits (13818-1 Table 2-21). */
function writeTimestamp(b: Buffer, at: number, prefix: number, ts: number): void {
  const hi = Math.floor(ts / 2 ** 30) & 7;
  const lo = ts % 2 ** 30;
  b[at] = (prefix << 4) | (hi << 1) | 1;
  b[at + 1] = (lo >> 22) & 0xff;
  b[at + 2] = (((lo >> 15) & 0x7f) << 1) | 1;
  b[at + 3] = (lo >> 7) & 0xff;
  b[at + 4] = ((lo & 0x7f) << 1) | 1;
}

/** program_clock_reference_base (33 bits), 6 reserved bits, extension 0 (§2.4.3.5). */
function writePcr(b: Buffer, at: number, base: number): void {
  b.writeUInt32BE(Math.floor(base / 2) >>> 0, at);
  b[at + 4] = ((base % 2) << 7) | 0x7e;
  b[at + 5] = 0;
}
