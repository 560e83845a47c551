/**
 * The MPEG audio frame header (ISO/IEC 11172-3 §2.4.1.3, 13818-3 for the lower rates; "MPEG 2.5"
 * is the common extension to 8-12 kHz): what a stream's sample rate and channel count are, read
 * from the first frame, since MP3 in FLV has no sequence header. Reads 4 bytes at most.
 */
export interface Mp3Header {
  /** 1 (MPEG-1), 2 (MPEG-2) or 2.5. */
  version: number;
  layer: number;
  sampleRate: number;
  channels: number;
  /** kbit/s; 0 is "free format" (a rate the header does not name, so no frame length either). */
  bitrate: number;
  /** PCM samples a frame decodes to: 384 (Layer I), 1152 (II, and III of MPEG-1), 576 (III of MPEG-2 and 2.5). */
  samplesPerFrame: number;
  /** The whole frame's length, header included; 0 for free format. */
  frameBytes: number;
}

/** Sampling frequencies by version bits (00 = 2.5, 10 = 2, 11 = 1) and the 2-bit index. */
const RATES: Record<number, readonly number[]> = {
  0: [11025, 12000, 8000],
  2: [22050, 24000, 16000],
  3: [44100, 48000, 32000],
};

/** kbit/s by bitrate index 1..14 (0 is free format, 15 forbidden): 11172-3 Table 2.4.2.3, 13818-3 §2.4.2.3. */
const BITRATES = {
  v1l1: [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  v1l2: [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  v1l3: [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  v2l1: [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  v2l23: [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
} as const;

/** The header at the start of `frame`, or null when there is no valid one there. */
export function parseMp3Header(frame: Buffer): Mp3Header | null {
  if (frame.length < 4 || frame[0] !== 0xff || (frame[1] & 0xe0) !== 0xe0) return null;
  const versionBits = (frame[1] >> 3) & 3;
  const layerBits = (frame[1] >> 1) & 3;
  const bitrateIndex = frame[2] >> 4;
  const rateIndex = (frame[2] >> 2) & 3;
  const rates = RATES[versionBits];
  // Version 01 and layer 00 are reserved; bitrate index 1111 is forbidden; rate index 11 is reserved.
  if (!rates || layerBits === 0 || bitrateIndex === 15 || rateIndex === 3) return null;
  const version = versionBits === 3 ? 1 : versionBits === 2 ? 2 : 2.5;
  const layer = 4 - layerBits;
  const table = version === 1 ? (layer === 1 ? BITRATES.v1l1 : layer === 2 ? BITRATES.v1l2 : BITRATES.v1l3) : layer === 1 ? BITRATES.v2l1 : BITRATES.v2l23;
  const bitrate = bitrateIndex === 0 ? 0 : table[bitrateIndex - 1];
  const sampleRate = rates[rateIndex];
  const samplesPerFrame = layer === 1 ? 384 : layer === 3 && version !== 1 ? 576 : 1152;
  const padding = (frame[2] >> 1) & 1;
  // Bytes = samples / 8 × bits per second / rate, plus the padding slot (4 bytes in Layer I, else 1).
  const frameBytes = bitrate === 0 ? 0
    : layer === 1 ? (Math.floor((12 * bitrate * 1000) / sampleRate) + padding) * 4
    : Math.floor(((samplesPerFrame / 8) * bitrate * 1000) / sampleRate) + padding;
  const mode = frame[3] >> 6;
  // Channel mode 11 is single channel; stereo, joint stereo and dual channel carry two.
  return { version, layer, sampleRate, channels: mode === 3 ? 1 : 2, bitrate, samplesPerFrame, frameBytes };
}

/**
 * The header of a Layer III frame that is whole in `frame` (one FLV tag may hold more than one):
 * what a container that trusts the header for its track (MP4's sample entry) accepts. Free
 * format is refused: its header names no frame length to check the frame against.
 */
export function wholeLayer3Frame(frame: Buffer): Mp3Header | null {
  const h = parseMp3Header(frame);
  return h && h.layer === 3 && h.frameBytes > 0 && frame.length >= h.frameBytes ? h : null;
}
