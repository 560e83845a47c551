/**
 * AV1 configuration parsing (AV1-ISOBMFF §2.3 AV1CodecConfigurationRecord, AV1 spec §5.5 sequence
 * header OBU): enough for the API's profile, level and picture size. Pure: bytes in, values out;
 * every read is bounded by the record and a malformed one throws Av1Error.
 */
import { BitReader } from './avc.js';

export class Av1Error extends Error {}

/** av1C's four fixed bytes before configOBUs. */
const AV1C_FIXED_BYTES = 4;
const OBU_SEQUENCE_HEADER = 1;
/** leb128 values are at most 8 bytes (AV1 spec §4.10.5). */
const LEB128_MAX_BYTES = 8;

export interface Av1Config {
  profileName: string;
  /** seq_level_idx as a level number: 8 → "4.0" (Annex A.3). */
  level: string;
  /** From the sequence header OBU, 0 when the record carries none. */
  width: number;
  height: number;
}

/** seq_profile names (§6.4.1). */
const PROFILES = ['Main', 'High', 'Professional'];

/** Parses an AV1CodecConfigurationRecord (without FLV's prefix). */
export function parseAv1c(rec: Buffer): Av1Config {
  if (rec.length < AV1C_FIXED_BYTES || rec[0] !== 0x81) throw new Av1Error('not an AV1CodecConfigurationRecord');
  const profile = rec[1] >> 5;
  const levelIdx = rec[1] & 0x1f;
  const out: Av1Config = { profileName: PROFILES[profile] ?? `${profile}`, level: levelName(levelIdx), width: 0, height: 0 };
  const seq = findSequenceHeader(rec.subarray(AV1C_FIXED_BYTES));
  if (seq) {
    const size = parseSequenceHeaderSize(seq);
    out.width = size.width;
    out.height = size.height;
  }
  return out;
}

/** seq_level_idx → "X.Y": X = 2 + (idx >> 2), Y = idx & 3 (Annex A.3); 31 means "no level". */
function levelName(idx: number): string {
  return idx === 31 ? '' : `${2 + (idx >> 2)}.${idx & 3}`;
}

/** Reads an unsigned LEB128 (§4.10.5); null if it runs past the buffer or its 8-byte bound. */
export function readLeb128(b: Buffer, at: number): { value: number; bytes: number } | null {
  let value = 0;
  for (let i = 0; i < LEB128_MAX_BYTES; i++) {
    if (at + i >= b.length) return null;
    const byte = b[at + i];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return { value, bytes: i + 1 };
  }
  return null;
}

/** The payload of the first sequence header OBU among low-overhead OBUs, or null. */
function findSequenceHeader(obus: Buffer): Buffer | null {
  let at = 0;
  while (at < obus.length) {
    const h = obus[at];
    const type = (h >> 3) & 0xf;
    const ext = (h >> 2) & 1;
    const hasSize = (h >> 1) & 1;
    let p = at + 1 + ext;
    let end = obus.length;
    if (hasSize) {
      const s = readLeb128(obus, p);
      if (!s) return null;
      p += s.bytes;
      end = p + s.value;
      if (end > obus.length) return null;
    }
    if (p > end) return null;
    if (type === OBU_SEQUENCE_HEADER) return obus.subarray(p, end);
    at = end;
  }
  return null;
}

/** sequence_header_obu() (§5.5.1) up to max_frame_width/height. */
function parseSequenceHeaderSize(seq: Buffer): { width: number; height: number } {
  try {
    const r = new BitReader(seq);
    r.bits(3); // seq_profile
    r.bits(1); // still_picture
    const reduced = r.bits(1);
    if (reduced) {
      r.bits(5); // seq_level_idx[0]
    } else {
      let bufferDelayBits = 0;
      let decoderModel = 0;
      if (r.bits(1)) {
        // timing_info(): num_units_in_display_tick, time_scale, equal_picture_interval
        r.bits(32);
        r.bits(32);
        if (r.bits(1)) uvlc(r);
        decoderModel = r.bits(1);
        if (decoderModel) {
          bufferDelayBits = r.bits(5) + 1;
          r.bits(32); // num_units_in_decoding_tick
          r.bits(5); // buffer_removal_time_length_minus_1
          r.bits(5); // frame_presentation_time_length_minus_1
        }
      }
      const displayDelay = r.bits(1);
      const points = r.bits(5) + 1;
      for (let i = 0; i < points; i++) {
        r.bits(12); // operating_point_idc
        if (r.bits(5) > 7) r.bits(1); // seq_level_idx, seq_tier
        if (decoderModel && r.bits(1)) {
          r.bits(bufferDelayBits); // decoder_buffer_delay
          r.bits(bufferDelayBits); // encoder_buffer_delay
          r.bits(1); // low_delay_mode_flag
        }
        if (displayDelay && r.bits(1)) r.bits(4);
      }
    }
    const wBits = r.bits(4) + 1;
    const hBits = r.bits(4) + 1;
    return { width: r.bits(wBits) + 1, height: r.bits(hBits) + 1 };
  } catch {
    throw new Av1Error('sequence header OBU ends early');
  }
}

/** uvlc() (§4.10.3): leading zeros, then that many bits; more than 32 zeros is malformed. */
function uvlc(r: BitReader): void {
  let zeros = 0;
  while (r.bits(1) === 0) if (++zeros >= 32) throw new Av1Error('bad uvlc');
  r.bits(zeros);
}
