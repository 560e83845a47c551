import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './ffmpeg.js';

/**
 * Enhanced RTMP / Enhanced FLV media for tests. Debian's ffmpeg 5.1 cannot write HEVC or AV1 into
 * FLV, so the helper encodes with libx265 / libaom-av1 into MP4 (where samples are already what
 * Enhanced FLV carries: length-prefixed NAL units, or low-overhead OBUs), takes the hvcC/av1C
 * record and every sample with its timestamps from there, and writes the tags itself
 * (veovera enhanced-rtmp v1: IsExHeader, FrameType, PacketType, FourCC).
 */

export type ExCodec = 'hevc' | 'av1';

export interface EncodedSample {
  /** Decode time in ms, starting at 0. */
  dts: number;
  /** Composition offset in ms (B-frames). */
  cts: number;
  key: boolean;
  data: Buffer;
}

export interface Encoded {
  codec: ExCodec;
  /** hvcC or av1C contents (the box payload). */
  config: Buffer;
  samples: EncodedSample[];
  width: number;
  height: number;
}

export interface EncodeOptions {
  seconds?: number;
  fps?: number;
  size?: string;
  /** Key frame interval in frames. */
  gop?: number;
}

/** Encodes lavfi testsrc2 with a real encoder and returns its config record and samples. */
export async function encode(codec: ExCodec, o: EncodeOptions = {}): Promise<Encoded> {
  const fps = o.fps ?? 25;
  const gop = o.gop ?? fps;
  const size = o.size ?? '320x240';
  const dir = mkdtempSync(join(tmpdir(), 'sg-exflv-'));
  const file = join(dir, 'v.mp4');
  try {
    const enc = codec === 'hevc'
      ? ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `log-level=error:keyint=${gop}:min-keyint=${gop}:bframes=2:scenecut=0`, '-tag:v', 'hvc1']
      : ['-c:v', 'libaom-av1', '-cpu-used', '8', '-usage', 'realtime', '-g', String(gop), '-b:v', '200k'];
    const e = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=${fps}`, '-t', String(o.seconds ?? 2), ...enc, '-pix_fmt', 'yuv420p', file]);
    if ((await e.exited) !== 0) throw new Error(`ffmpeg failed: ${e.stderr()}`);
    const p = run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=pts_time,dts_time,size,pos,flags', '-of', 'csv=p=0', file]);
    if ((await p.exited) !== 0) throw new Error(`ffprobe failed: ${p.stderr()}`);
    const mp4 = readFileSync(file);
    const rows = p.stdout().toString().trim().split('\n').map((l) => l.split(','));
    const t0 = Number(rows[0][1]);
    const samples = rows.map(([pts, dts, bytes, pos, flags]) => {
      const d = Math.round((Number(dts) - t0) * 1000);
      return { dts: d, cts: Math.round((Number(pts) - t0) * 1000) - d, key: flags.startsWith('K'), data: mp4.subarray(Number(pos), Number(pos) + Number(bytes)) };
    });
    const [width, height] = size.split('x').map(Number);
    return { codec, config: box(mp4, codec === 'hevc' ? 'hvcC' : 'av1C'), samples, width, height };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The payload of the first box of `type` in an MP4 file (the record boxes are small and unique). */
function box(mp4: Buffer, type: string): Buffer {
  const at = mp4.indexOf(type, 0, 'latin1');
  if (at < 4) throw new Error(`no ${type} box`);
  return Buffer.from(mp4.subarray(at + 4, at - 4 + mp4.readUInt32BE(at - 4)));
}

export const EX_FOURCC: Record<ExCodec, string> = { hevc: 'hvc1', av1: 'av01' };

/** One Enhanced-FLV video tag body. `cts` is written only for CodedFrames (1) of hvc1/avc1. */
export function exVideoBody(frameType: number, packetType: number, fourcc: string, payload: Buffer, cts?: number): Buffer {
  const head = Buffer.from([0x80 | (frameType << 4) | packetType, ...Buffer.from(fourcc, 'latin1')]);
  if (cts === undefined) return Buffer.concat([head, payload]);
  const t = Buffer.alloc(3);
  t.writeIntBE(cts, 0, 3);
  return Buffer.concat([head, t, payload]);
}

export interface ExTag {
  dts: number;
  body: Buffer;
}

/**
 * The tags an Enhanced RTMP encoder sends for `enc`: SequenceStart, then each sample (HEVC:
 * CodedFrames with its composition time when non-zero, CodedFramesX when zero, as OBS does; AV1:
 * CodedFrames and CodedFramesX alternately, both forms without a time), then SequenceEnd.
 */
export function enhancedTags(enc: Encoded): ExTag[] {
  const cc = EX_FOURCC[enc.codec];
  const tags: ExTag[] = [{ dts: 0, body: exVideoBody(1, 0, cc, enc.config) }];
  enc.samples.forEach((s, i) => {
    const ft = s.key ? 1 : 2;
    const body = enc.codec === 'hevc'
      ? s.cts !== 0 ? exVideoBody(ft, 1, cc, s.data, s.cts) : exVideoBody(ft, 3, cc, s.data)
      : exVideoBody(ft, i % 2 === 0 ? 1 : 3, cc, s.data);
    tags.push({ dts: s.dts, body });
  });
  const last = enc.samples[enc.samples.length - 1];
  tags.push({ dts: last ? last.dts : 0, body: exVideoBody(1, 2, cc, Buffer.alloc(0)) });
  return tags;
}

/** Video tags as FLV bytes (header announcing video only, each tag with its PreviousTagSize). */
export function flvBytes(tags: readonly ExTag[], withHeader = true): Buffer {
  const parts: Buffer[] = withHeader ? [Buffer.from([0x46, 0x4c, 0x56, 1, 1, 0, 0, 0, 9, 0, 0, 0, 0])] : [];
  for (const t of tags) {
    const h = Buffer.alloc(11);
    h[0] = 9;
    h.writeUIntBE(t.body.length, 1, 3);
    h.writeUIntBE(t.dts & 0xffffff, 4, 3);
    h[7] = (t.dts >>> 24) & 0xff;
    const prev = Buffer.alloc(4);
    prev.writeUInt32BE(11 + t.body.length);
    parts.push(h, t.body, prev);
  }
  return Buffer.concat(parts);
}
