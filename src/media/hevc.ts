/**
 * H.265 parameter parsing (ISO/IEC 14496-15 §8.3.3.1 HEVCDecoderConfigurationRecord, ITU-T H.265
 * §7.3.2.2 SPS): the parameter sets a remuxer needs in Annex-B form before each IRAP picture, and
 * the profile, level and picture size the API reports. Pure: bytes in, values out; every read is
 * bounded by the record and a malformed one throws HevcError, which callers turn into "unknown".
 */
import { BitReader, unescapeRbsp } from './avc.js';

export class HevcError extends Error {}

export const NAL_VPS = 32;
export const NAL_SPS = 33;
export const NAL_PPS = 34;
export const NAL_AUD = 35;
/** IRAP pictures (BLA, IDR, CRA and the reserved IRAP types) are NAL unit types 16..23 (§7.4.2.2). */
export const NAL_IRAP_FIRST = 16;
export const NAL_IRAP_LAST = 23;

/** hvcC's fixed part before the arrays: 22 bytes of fields, then numOfArrays. */
const HVCC_FIXED_BYTES = 23;
/**
 * More parameter sets than this in one record is hostile: H.265 allows 16 VPS, 16 SPS and 64 PPS
 * (§7.4.3), so a real record never comes near it.
 */
export const MAX_HVCC_NALUS = 128;

export interface HevcConfig {
  /** Bytes in each NAL unit's length prefix (1, 2 or 4). */
  nalLengthSize: number;
  vps: Buffer[];
  sps: Buffer[];
  pps: Buffer[];
  /** The profile, level and size of the first SPS; empty/0 where it could not be read. */
  profileName: string;
  level: string;
  width: number;
  height: number;
}

/** NAL unit type of an H.265 NAL unit (the 6 bits after forbidden_zero_bit, §7.3.1.2). */
export function hevcNalType(nal: Buffer): number {
  return nal.length > 0 ? (nal[0] >> 1) & 0x3f : -1;
}

/** Parses an HEVCDecoderConfigurationRecord (without FLV's prefix). */
export function parseHvcc(rec: Buffer): HevcConfig {
  if (rec.length < HVCC_FIXED_BYTES || rec[0] !== 1) throw new HevcError('not an HEVCDecoderConfigurationRecord');
  const nalLengthSize = (rec[21] & 3) + 1;
  if (nalLengthSize === 3) throw new HevcError('a 3-byte NAL length prefix is not allowed');
  const sets: Record<number, Buffer[]> = { [NAL_VPS]: [], [NAL_SPS]: [], [NAL_PPS]: [] };
  const arrays = rec[22];
  let at = HVCC_FIXED_BYTES;
  let total = 0;
  for (let i = 0; i < arrays; i++) {
    if (at + 3 > rec.length) throw new HevcError('truncated hvcC array');
    const type = rec[at] & 0x3f;
    const count = rec.readUInt16BE(at + 1);
    at += 3;
    total += count;
    if (total > MAX_HVCC_NALUS) throw new HevcError(`more than ${MAX_HVCC_NALUS} parameter sets in hvcC`);
    for (let j = 0; j < count; j++) {
      if (at + 2 > rec.length) throw new HevcError('truncated hvcC NAL unit length');
      const len = rec.readUInt16BE(at);
      at += 2;
      if (at + len > rec.length) throw new HevcError('truncated hvcC NAL unit');
      sets[type]?.push(rec.subarray(at, at + len));
      at += len;
    }
  }
  let info: SpsInfo = { profileName: '', level: '', width: 0, height: 0 };
  if (sets[NAL_SPS].length > 0) {
    try {
      info = parseHevcSps(sets[NAL_SPS][0]);
    } catch {
      // The parameter sets are still good for remuxing; only the API's description is lost.
    }
  }
  return { nalLengthSize, vps: sets[NAL_VPS], sps: sets[NAL_SPS], pps: sets[NAL_PPS], ...info };
}

interface SpsInfo {
  profileName: string;
  level: string;
  width: number;
  height: number;
}

/** general_profile_idc names (H.265 Annex A.3), as SRS reports them. */
const PROFILES: Record<number, string> = { 1: 'Main', 2: 'Main10', 3: 'Main Still Picture', 4: 'RExt' };

/** Parses an SPS NAL unit (2-byte header included) for profile, level and cropped picture size. */
export function parseHevcSps(nal: Buffer): SpsInfo {
  if (nal.length < 4 || hevcNalType(nal) !== NAL_SPS) throw new HevcError('not an SPS NAL unit');
  const r = new BitReader(unescapeRbsp(nal.subarray(2)));
  r.bits(4); // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.bits(3);
  r.bits(1); // sps_temporal_id_nesting_flag
  // profile_tier_level(1, maxSubLayersMinus1), §7.3.3: the general part is 88 bits, then the level.
  r.bits(2); // general_profile_space
  r.bits(1); // general_tier_flag
  const profile = r.bits(5);
  r.bits(32); // general_profile_compatibility_flag[32]
  r.bits(32); // progressive, interlaced, non-packed, frame-only + 43 reserved/constraint bits + inbld
  r.bits(16);
  const levelIdc = r.bits(8);
  const present: [boolean, boolean][] = [];
  for (let i = 0; i < maxSubLayersMinus1; i++) present.push([r.bits(1) === 1, r.bits(1) === 1]);
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) r.bits(2);
  for (const [profilePresent, levelPresent] of present) {
    if (profilePresent) {
      r.bits(32);
      r.bits(32);
      r.bits(24); // 88 bits of sub_layer profile
    }
    if (levelPresent) r.bits(8);
  }
  r.ue(); // sps_seq_parameter_set_id
  const chroma = r.ue();
  let separate = 0;
  if (chroma === 3) separate = r.bits(1);
  let width = r.ue();
  let height = r.ue();
  if (r.bits(1)) {
    // Conformance window offsets are in chroma units (Table 6-1): SubWidthC/SubHeightC.
    const sw = (chroma === 1 || chroma === 2) && !separate ? 2 : 1;
    const sh = chroma === 1 && !separate ? 2 : 1;
    const left = r.ue();
    const right = r.ue();
    const top = r.ue();
    const bottom = r.ue();
    width -= sw * (left + right);
    height -= sh * (top + bottom);
  }
  return { profileName: PROFILES[profile] ?? `${profile}`, level: levelName(levelIdc), width, height };
}

/** general_level_idc is 30 × the level number (A.4.1): 93 → "3.1", 120 → "4". */
function levelName(idc: number): string {
  return `${Math.round(idc / 3) / 10}`;
}
