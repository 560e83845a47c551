import { type MediaPacket, TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT, packetFromTag } from '../packet.js';

/**
 * A tag larger than this is hostile or corrupt: refused before a byte of it is buffered. FLV's
 * 24-bit size allows 16 MiB; a real key frame even at 4K and 50 Mbps stays under 4 MiB, so 8 MiB
 * halves what one publisher can make us hold without refusing any real stream.
 */
export const MAX_TAG_BYTES = 8 * 1024 * 1024;
const FILE_HEADER_BYTES = 9;
const TAG_HEADER_BYTES = 11;
const PREV_TAG_SIZE_BYTES = 4;

export class FlvError extends Error {}

/**
 * Incremental FLV demuxer (FLV spec v10.1, annex E): bytes in any chunking, MediaPackets out.
 * The body of each tag is copied once, so a packet never pins the chunk it arrived in.
 */
export class FlvDemuxer {
  header: { hasAudio: boolean; hasVideo: boolean } | null = null;
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): MediaPacket[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: MediaPacket[] = [];
    let off = 0;
    if (!this.header) {
      if (this.buf.length < 13) return out;
      if (this.buf[0] !== 0x46 || this.buf[1] !== 0x4c || this.buf[2] !== 0x56) throw new FlvError('not FLV: the stream must start with "FLV"');
      const flags = this.buf[4];
      const dataOffset = this.buf.readUInt32BE(5);
      if (dataOffset < FILE_HEADER_BYTES || dataOffset > 1024) throw new FlvError(`bad FLV header size ${dataOffset}`);
      if (this.buf.length < dataOffset + PREV_TAG_SIZE_BYTES) return out;
      this.header = { hasAudio: (flags & 4) !== 0, hasVideo: (flags & 1) !== 0 };
      off = dataOffset + 4;
    }
    while (this.buf.length - off >= TAG_HEADER_BYTES) {
      // E.4.1: bit 5 is the Filter (encryption) flag; we cannot decrypt, so refuse rather than relay garbage.
      if (this.buf[off] & 0x20) throw new FlvError('encrypted FLV tags are not supported');
      const type = this.buf[off] & 0x1f;
      if (type !== TAG_AUDIO && type !== TAG_VIDEO && type !== TAG_SCRIPT) throw new FlvError(`unknown FLV tag type ${type}`);
      const size = this.buf.readUIntBE(off + 1, 3);
      if (size > MAX_TAG_BYTES) throw new FlvError(`FLV tag of ${size} bytes is over the ${MAX_TAG_BYTES}-byte bound`);
      if (this.buf.length - off < TAG_HEADER_BYTES + size + PREV_TAG_SIZE_BYTES) break;
      const ts = (this.buf.readUIntBE(off + 4, 3) | (this.buf[off + 7] << 24)) >>> 0;
      const data = Buffer.from(this.buf.subarray(off + TAG_HEADER_BYTES, off + TAG_HEADER_BYTES + size));
      off += TAG_HEADER_BYTES + size + PREV_TAG_SIZE_BYTES;
      const pkt = packetFromTag(type, ts, data);
      if (pkt) out.push(pkt);
    }
    this.buf = this.buf.subarray(off);
    if (this.buf.length === 0) this.buf = Buffer.alloc(0);
    return out;
  }
}
