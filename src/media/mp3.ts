/**
 * The MPEG audio frame header (ISO/IEC 11172-3 §2.4.1.3, 13818-3 for the lower rates; "MPEG 2.5"
 * is the common extension to 8-12 kHz): what a stream's sample rate and channel count are, read
 * from the first frame, since MP3 in FLV has no sequence header.
 */
export interface Mp3Header {
  /** 1 (MPEG-1), 2 (MPEG-2) or 2.5. */
  version: number;
  layer: number;
  sampleRate: number;
  channels: number;
}

/** Sampling frequencies by version bits (00 = 2.5, 10 = 2, 11 = 1) and the 2-bit index. */
const RATES: Record<number, readonly number[]> = {
  0: [11025, 12000, 8000],
  2: [22050, 24000, 16000],
  3: [44100, 48000, 32000],
};

/** The header at the start of `frame`, or null when there is no valid one there. */
export function parseMp3Header(frame: Buffer): Mp3Header | null {
  if (frame.length < 4 || frame[0] !== 0xff || (frame[1] & 0xe0) !== 0xe0) return null;
  const versionBits = (frame[1] >> 3) & 3;
  const layerBits = (frame[1] >> 1) & 3;
  const rateIndex = (frame[2] >> 2) & 3;
  const rates = RATES[versionBits];
  // Version 01 and layer 00 are reserved; rate index 11 is reserved.
  if (!rates || layerBits === 0 || rateIndex === 3) return null;
  const mode = frame[3] >> 6;
  return {
    version: versionBits === 3 ? 1 : versionBits === 2 ? 2 : 2.5,
    layer: 4 - layerBits,
    sampleRate: rates[rateIndex],
    // Channel mode 11 is single channel; stereo, joint stereo and dual channel carry two.
    channels: mode === 3 ? 1 : 2,
  };
}
