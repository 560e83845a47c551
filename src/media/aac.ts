/**
 * AAC's AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and the ADTS header (§1.A.2.2) that
 * raw AAC frames need in MPEG-TS and in a .aac stream. Pure: bytes in, values out.
 */

export interface AacConfig {
  /** Audio Object Type: 2 = AAC LC, 5 = SBR (HE-AAC), 29 = PS (HE-AAC v2). */
  objectType: number;
  profileName: string;
  samplingIndex: number;
  sampleRate: number;
  channels: number;
}

export class AacError extends Error {}

/** Sampling frequencies by index (Table 1.18). */
export const AAC_SAMPLE_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/** FLV's audio tag body for AAC: SoundFormat byte, AACPacketType byte (E.4.2.1). */
export const FLV_AAC_PREFIX_BYTES = 2;

const PROFILE_NAMES: Record<number, string> = { 1: 'Main', 2: 'LC', 3: 'SSR', 4: 'LTP', 5: 'HE', 29: 'HEv2' };

export function parseAudioSpecificConfig(b: Buffer): AacConfig {
  if (b.length < 2) throw new AacError('AudioSpecificConfig is shorter than 2 bytes');
  let pos = 0;
  const bits = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = pos >> 3;
      if (byte >= b.length) throw new AacError('AudioSpecificConfig ends early');
      v = v * 2 + ((b[byte] >> (7 - (pos & 7))) & 1);
      pos++;
    }
    return v;
  };
  let objectType = bits(5);
  if (objectType === 31) objectType = 32 + bits(6);
  const samplingIndex = bits(4);
  const sampleRate = samplingIndex === 15 ? bits(24) : AAC_SAMPLE_RATES[samplingIndex];
  if (sampleRate === undefined) throw new AacError(`reserved sampling frequency index ${samplingIndex}`);
  const channels = bits(4);
  return { objectType, profileName: PROFILE_NAMES[objectType] ?? `aot-${objectType}`, samplingIndex, sampleRate, channels };
}

/**
 * The 7-byte ADTS header (no CRC) for one raw AAC frame of `payloadLength` bytes. ADTS can only
 * say Main/LC/SSR/LTP, so HE-AAC goes out as its LC core, which every decoder then upsamples.
 */
export function adtsHeader(c: AacConfig, payloadLength: number): Buffer {
  const frameLength = payloadLength + 7;
  if (frameLength > 0x1fff) throw new AacError(`AAC frame of ${payloadLength} bytes does not fit ADTS`);
  const profile = (c.objectType >= 1 && c.objectType <= 4 ? c.objectType : 2) - 1;
  const index = c.samplingIndex === 15 ? Math.max(0, AAC_SAMPLE_RATES.indexOf(c.sampleRate)) : c.samplingIndex;
  const ch = c.channels & 7;
  const h = Buffer.allocUnsafe(7);
  h[0] = 0xff;
  h[1] = 0xf1; // MPEG-4, layer 0, no CRC
  h[2] = (profile << 6) | (index << 2) | (ch >> 2);
  h[3] = ((ch & 3) << 6) | (frameLength >> 11);
  h[4] = (frameLength >> 3) & 0xff;
  h[5] = ((frameLength & 7) << 5) | 0x1f; // buffer fullness 0x7FF: variable rate
  h[6] = 0xfc;
  return h;
}
