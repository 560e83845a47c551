/**
 * H.264 parameter parsing (ITU-T H.264 §7.3.2.1.1 and ISO/IEC 14496-15 §5.2.4.1): enough of the
 * AVCDecoderConfigurationRecord and the SPS to report profile, level and picture size, and to
 * hand SPS/PPS to a remuxer that needs them in Annex-B form. Pure: bytes in, values out.
 */

export interface AvcConfig {
  profile: number;
  profileName: string;
  /** "3.1", "4", … as SRS shows it. */
  level: string;
  width: number;
  height: number;
  /** Bytes in each NAL unit's length prefix (1, 2 or 4). */
  nalLengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
}

export class AvcError extends Error {}

/** FLV's video tag body for AVC: frame type/codec, AVCPacketType, composition time (E.4.3.1). */
export const FLV_AVC_PREFIX_BYTES = 5;

/** Parses the AVCDecoderConfigurationRecord carried by an FLV AVC sequence header, prefix included. */
export function parseAvcSequenceHeader(tagBody: Buffer): AvcConfig {
  return parseAvcConfig(tagBody.subarray(FLV_AVC_PREFIX_BYTES));
}

/** Parses an AVCDecoderConfigurationRecord (without FLV's 5-byte prefix). */
export function parseAvcConfig(rec: Buffer): AvcConfig {
  if (rec.length < 7 || rec[0] !== 1) throw new AvcError('not an AVCDecoderConfigurationRecord');
  const nalLengthSize = (rec[4] & 3) + 1;
  let at = 5;
  const sps: Buffer[] = [];
  const pps: Buffer[] = [];
  const take = (list: Buffer[], count: number) => {
    for (let i = 0; i < count; i++) {
      if (at + 2 > rec.length) throw new AvcError('truncated parameter set length');
      const len = rec.readUInt16BE(at);
      at += 2;
      if (at + len > rec.length) throw new AvcError('truncated parameter set');
      list.push(rec.subarray(at, at + len));
      at += len;
    }
  };
  take(sps, rec[at++] & 0x1f);
  if (at < rec.length) take(pps, rec[at++]);
  if (sps.length === 0) throw new AvcError('no SPS in the configuration record');
  const info = parseSps(sps[0]);
  return { ...info, nalLengthSize, sps, pps };
}

export interface SpsInfo {
  profile: number;
  profileName: string;
  level: string;
  width: number;
  height: number;
}

/** Profiles whose SPS carries chroma format, bit depths and scaling lists (§7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Parses an SPS NAL unit (header byte included) for profile, level and cropped picture size. */
export function parseSps(nal: Buffer): SpsInfo {
  if (nal.length < 4 || (nal[0] & 0x1f) !== 7) throw new AvcError('not an SPS NAL unit');
  const r = new BitReader(unescapeRbsp(nal.subarray(1)));
  const profile = r.bits(8);
  const constraints = r.bits(8);
  const levelIdc = r.bits(8);
  r.ue(); // seq_parameter_set_id
  let chroma = 1;
  if (HIGH_PROFILES.has(profile)) {
    chroma = r.ue();
    if (chroma === 3) r.bits(1); // separate_colour_plane_flag
    r.ue(); // bit_depth_luma_minus8
    r.ue(); // bit_depth_chroma_minus8
    r.bits(1); // qpprime_y_zero_transform_bypass_flag
    if (r.bits(1)) {
      for (let i = 0; i < (chroma !== 3 ? 8 : 12); i++) {
        if (r.bits(1)) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }
  r.ue(); // log2_max_frame_num_minus4
  const pocType = r.ue();
  if (pocType === 0) {
    r.ue(); // log2_max_pic_order_cnt_lsb_minus4
  } else if (pocType === 1) {
    r.bits(1);
    r.se();
    r.se();
    const n = r.ue();
    if (n > 255) throw new AvcError('absurd num_ref_frames_in_pic_order_cnt_cycle');
    for (let i = 0; i < n; i++) r.se();
  }
  r.ue(); // max_num_ref_frames
  r.bits(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1;
  const heightUnits = r.ue() + 1;
  const frameMbsOnly = r.bits(1);
  if (!frameMbsOnly) r.bits(1); // mb_adaptive_frame_field_flag
  r.bits(1); // direct_8x8_inference_flag
  let cropX = 0;
  let cropY = 0;
  if (r.bits(1)) {
    // Crop units depend on chroma subsampling (Table 6-1): SubWidthC, SubHeightC.
    const subW = chroma === 1 || chroma === 2 ? 2 : 1;
    const subH = chroma === 1 ? 2 : 1;
    const unitX = chroma === 0 ? 1 : subW;
    const unitY = (chroma === 0 ? 1 : subH) * (2 - frameMbsOnly);
    cropX = (r.ue() + r.ue()) * unitX;
    cropY = (r.ue() + r.ue()) * unitY;
  }
  return {
    profile,
    profileName: profileName(profile, constraints),
    level: levelIdc % 10 === 0 ? String(levelIdc / 10) : (levelIdc / 10).toFixed(1),
    width: widthMbs * 16 - cropX,
    height: (2 - frameMbsOnly) * heightUnits * 16 - cropY,
  };
}

function profileName(profile: number, constraints: number): string {
  switch (profile) {
    case 66: return constraints & 0x40 ? 'Constrained Baseline' : 'Baseline';
    case 77: return 'Main';
    case 88: return 'Extended';
    case 100: return 'High';
    case 110: return 'High 10';
    case 122: return 'High 4:2:2';
    case 244: return 'High 4:4:4';
    default: return `profile-${profile}`;
  }
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

/** Removes emulation-prevention bytes (00 00 03 → 00 00), §7.4.1. */
export function unescapeRbsp(b: Buffer): Buffer {
  let zeros = 0;
  let needs = false;
  for (let i = 0; i < b.length; i++) {
    if (zeros >= 2 && b[i] === 3) {
      needs = true;
      break;
    }
    zeros = b[i] === 0 ? zeros + 1 : 0;
  }
  if (!needs) return b;
  const out = Buffer.allocUnsafe(b.length);
  let n = 0;
  zeros = 0;
  for (let i = 0; i < b.length; i++) {
    if (zeros >= 2 && b[i] === 3) {
      zeros = 0;
      continue;
    }
    zeros = b[i] === 0 ? zeros + 1 : 0;
    out[n++] = b[i];
  }
  return out.subarray(0, n);
}

/** MSB-first bit reader with Exp-Golomb codes (§9.1); reading past the end throws. */
export class BitReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.pos >> 3;
      if (byte >= this.buf.length) throw new AvcError('SPS ends early');
      v = v * 2 + ((this.buf[byte] >> (7 - (this.pos & 7))) & 1);
      this.pos++;
    }
    return v;
  }

  ue(): number {
    let zeros = 0;
    while (this.bits(1) === 0) {
      if (++zeros > 31) throw new AvcError('bad Exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  se(): number {
    const k = this.ue();
    return k % 2 === 1 ? (k + 1) / 2 : -(k / 2);
  }
}
