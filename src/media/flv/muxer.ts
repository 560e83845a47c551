import { PASS_THROUGH, playerDts, type MediaPacket, tagTypeOf } from '../packet.js';

/**
 * The FLV file header and PreviousTagSize0 (FLV spec E.2, E.3). The audio/video flags must
 * match the tracks really present: mpegts.js waits for a track the header promises.
 */
export function flvHeader(hasAudio: boolean, hasVideo: boolean): Buffer {
  return Buffer.from([0x46, 0x4c, 0x56, 1, (hasAudio ? 4 : 0) | (hasVideo ? 1 : 0), 0, 0, 0, 9, 0, 0, 0, 0]);
}

/**
 * A run of packets as FLV tags in one allocation and one copy per packet: the hot path of
 * HTTP-FLV fan-out, done once per batch for every player in step. Timestamps go on the timeline
 * whose 0 is `origin` (see playerDts).
 */
export function flvTags(pkts: readonly MediaPacket[], origin = PASS_THROUGH): Buffer {
  let n = 0;
  for (const p of pkts) n += 15 + p.data.length;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (const p of pkts) {
    const size = p.data.length;
    out[o] = tagTypeOf(p.kind);
    out.writeUIntBE(size, o + 1, 3);
    const dts = playerDts(p, origin);
    out.writeUIntBE(dts & 0xffffff, o + 4, 3);
    out[o + 7] = (dts >>> 24) & 0xff;
    out.writeUIntBE(0, o + 8, 3);
    p.data.copy(out, o + 11);
    out.writeUInt32BE(size + 11, o + 11 + size);
    o += 15 + size;
  }
  return out;
}
