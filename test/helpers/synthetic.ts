import type { MediaPacket } from '../../src/media/packet.js';

/**
 * Synthetic live media as FLV packets, for feeding the hub and outputs faster than real time:
 * a real AVC sequence header (x264, 64×64) and AAC config, then frames whose bodies are filler NAL
 * units and raw AAC bytes. The timing, key frames and sizes are what segmenters care about.
 */

const AVC_SEQUENCE_HEADER = Buffer.from('17000000000142c00affe100166742c00ada109b011000000300100000030320f1226a01000468ce0fc8', 'hex');
const AAC_SEQUENCE_HEADER = Buffer.from('af00120856e500', 'hex');

export interface SyntheticOptions {
  fps?: number;
  /** Frames per GOP; 0 = one key frame at the start only. */
  gop?: number;
  video?: boolean;
  audio?: boolean;
  frameBytes?: number;
  /** First timestamp (ms), e.g. just below 2^32 to cross the wrap. */
  startMs?: number;
}

export function* syntheticStream(durationMs: number, o: SyntheticOptions = {}): Generator<MediaPacket> {
  const fps = o.fps ?? 25;
  const gop = o.gop ?? 50;
  const video = o.video ?? true;
  const audio = o.audio ?? true;
  const frameBytes = o.frameBytes ?? 2000;
  const start = o.startMs ?? 0;
  const ms32 = (t: number) => (start + t) >>> 0;
  if (video) yield { kind: 'video', dts: ms32(0), cts: 0, keyframe: true, header: true, codec: 7, data: AVC_SEQUENCE_HEADER };
  if (audio) yield { kind: 'audio', dts: ms32(0), cts: 0, keyframe: false, header: true, codec: 10, data: AAC_SEQUENCE_HEADER };
  // AAC frames are 1024 samples: 23.22 ms at 44.1 kHz.
  const audioStep = 1024_000 / 44100;
  const step = video ? 1000 / fps : audioStep;
  let nextAudio = 0;
  let frame = 0;
  for (let t = 0; t < durationMs; t += step) {
    if (video) {
      const key = gop > 0 ? frame % gop === 0 : frame === 0;
      const body = Buffer.alloc(5 + 4 + frameBytes, 0x11);
      body[0] = key ? 0x17 : 0x27;
      body[1] = 1;
      body.writeUIntBE(0, 2, 3);
      body.writeUInt32BE(frameBytes, 5);
      body[9] = key ? 0x65 : 0x41; // IDR slice / non-IDR slice
      yield { kind: 'video', dts: ms32(Math.round(t)), cts: 0, keyframe: key, header: false, codec: 7, data: body };
      frame++;
    }
    // The audio frames that fall within this step, interleaved as an encoder would.
    while (audio && nextAudio < t + step) {
      const body = Buffer.alloc(2 + 180, 0x22);
      body[0] = 0xaf;
      body[1] = 1;
      yield { kind: 'audio', dts: ms32(Math.round(nextAudio)), cts: 0, keyframe: false, header: false, codec: 10, data: body };
      nextAudio += audioStep;
    }
  }
}
