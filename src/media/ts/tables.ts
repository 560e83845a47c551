import { crc32Mpeg2 } from './crc32.js';

/** Program-specific information of the one program streamgate's MPEG-TS carries (13818-1 §2.4.4). */

export const PID_PAT = 0x0000;
/** SRS's and ffmpeg's PMT PID. */
export const PID_PMT = 0x1001;
export const PID_VIDEO = 0x100;
export const PID_AUDIO = 0x101;
/** stream_type values (13818-1 Table 2-34; H.264 from Amd.3, ADTS AAC from 13818-7). */
export const STREAM_TYPE_H264 = 0x1b;
/** H.265 video (13818-1 Amd.3, Table 2-34). */
export const STREAM_TYPE_H265 = 0x24;
export const STREAM_TYPE_AAC_ADTS = 0x0f;
export const STREAM_TYPE_MPEG1_AUDIO = 0x03;

export interface TsTracks {
  video: boolean;
  /** The video stream's codec when `video` is set; H.264 when absent. */
  videoCodec?: 'avc' | 'hevc';
  audio: 'aac' | 'mp3' | null;
}

export function videoOf(t: TsTracks): 'avc' | 'hevc' {
  return t.videoCodec ?? 'avc';
}

/** A PSI section: header, body, CRC (13818-1 §2.4.4.3/§2.4.4.8). */
function psi(tableId: number, idExt: number, version: number, body: Buffer): Buffer {
  const sectionLength = 5 + body.length + 4;
  const s = Buffer.allocUnsafe(3 + sectionLength);
  s[0] = tableId;
  s.writeUInt16BE(0xb000 | sectionLength, 1); // section_syntax_indicator, '0', reserved
  s.writeUInt16BE(idExt, 3);
  s[5] = 0xc1 | (version << 1); // reserved, version, current_next_indicator
  s[6] = 0;
  s[7] = 0;
  body.copy(s, 8);
  s.writeUInt32BE(crc32Mpeg2(s, 0, s.length - 4), s.length - 4);
  return s;
}

export function pat(): Buffer {
  const body = Buffer.allocUnsafe(4);
  body.writeUInt16BE(1, 0); // program_number
  body.writeUInt16BE(0xe000 | PID_PMT, 2);
  return psi(0x00, 1, 0, body);
}

export function pmt(t: TsTracks, pcrPid: number, version: number): Buffer {
  const streams: [number, number][] = [];
  if (t.video) streams.push([videoOf(t) === 'hevc' ? STREAM_TYPE_H265 : STREAM_TYPE_H264, PID_VIDEO]);
  if (t.audio) streams.push([t.audio === 'aac' ? STREAM_TYPE_AAC_ADTS : STREAM_TYPE_MPEG1_AUDIO, PID_AUDIO]);
  const body = Buffer.allocUnsafe(4 + streams.length * 5);
  body.writeUInt16BE(0xe000 | pcrPid, 0);
  body.writeUInt16BE(0xf000, 2); // program_info_length 0
  let o = 4;
  for (const [type, pid] of streams) {
    body[o] = type;
    body.writeUInt16BE(0xe000 | pid, o + 1);
    body.writeUInt16BE(0xf000, o + 3);
    o += 5;
  }
  return psi(0x02, 1, version, body);
}
