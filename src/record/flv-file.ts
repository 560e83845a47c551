import { flvHeader, flvTags } from '../media/flv/muxer.js';
import { PASS_THROUGH, type MediaPacket } from '../media/packet.js';
import { AmfError, type AmfValue, decodeAmf0All, EcmaArray, encodeAmf0 } from '../ingest/rtmp/amf0.js';

/** A packet at its time in the file (ms from the file's 0, or the publisher's clock with time_jitter off). */
export interface Timed {
  p: MediaPacket;
  t: number;
}

/** The codec headers a file starts with, and the publisher's last onMetaData (a script packet). */
export interface Headers {
  video: MediaPacket | null;
  audio: MediaPacket | null;
  meta?: MediaPacket | null;
}

/** A container's view of one file: bytes to start it, bytes per run of packets, bytes to end it. */
export interface FileEncoder {
  begin(): Buffer;
  /** Bytes for these packets (an MP4 fragment may wait for the next key frame: empty then). */
  add(run: readonly Timed[]): Buffer;
  /** Bytes that end the file, and rewrites of bytes written earlier (durations known only now). */
  end(durationMs: number): { tail: Buffer; patches: { at: number; data: Buffer }[] };
  /** The publisher's audio is not in the file (MP4 cannot hold that codec, or its header cannot be read). */
  readonly withoutAudio?: boolean;
  /** A track that appeared just after the file began (a sequence header, or MP3's first frame): whether the file takes it. FLV always does. */
  join?(p: MediaPacket): boolean;
}

/** AMF0 markers (AMF0 spec §2.1). */
const AMF_NUMBER = 0x00;
const AMF_STRING = 0x02;
const AMF_ECMA_ARRAY = 0x08;
const AMF_OBJECT_END = 0x09;

/**
 * FLV as SRS records it: the header, the publisher's onMetaData (its fields: encoder, size, frame
 * rate, bitrates …) less its duration and filesize, which are wrong for a file (0 from a live
 * encoder, or the whole session's length), with a duration that is filled in when the file
 * closes (SRS rewrites it the same way, so players show the length and can seek); then the
 * sequence headers at 0, then the tags.
 */
export class FlvFileEncoder implements FileEncoder {
  /** Position of the duration's 8 bytes in the file. */
  private durationAt = 0;

  constructor(private readonly headers: Headers) {}

  begin(): Buffer {
    const { video, audio } = this.headers;
    const fields: [string, number][] = [['duration', 0]];
    if (video) fields.push(['videocodecid', video.codec]);
    if (audio) fields.push(['audiocodecid', audio.codec]);
    const meta = publisherMeta(this.headers.meta ?? null, fields) ?? onMetaData(fields);
    const head = flvHeader(audio !== null, video !== null);
    // 11-byte tag header, then the body: the duration's number is the first field's value.
    this.durationAt = head.length + 11 + meta.durationOffset;
    const tag: MediaPacket = { kind: 'script', dts: 0, cts: 0, keyframe: false, header: false, codec: 0, data: meta.body };
    const first = [tag, ...[video, audio].filter((p): p is MediaPacket => p !== null && p.header).map((p) => ({ ...p, dts: 0 }))];
    return Buffer.concat([head, flvTags(first, PASS_THROUGH)]);
  }

  add(run: readonly Timed[]): Buffer {
    return flvTags(run.map(({ p, t }) => ({ ...p, dts: t })), PASS_THROUGH);
  }

  end(durationMs: number): { tail: Buffer; patches: { at: number; data: Buffer }[] } {
    const d = Buffer.alloc(8);
    d.writeDoubleBE(durationMs / 1000);
    return { tail: Buffer.alloc(0), patches: [{ at: this.durationAt, data: d }] };
  }
}

/** An onMetaData script body: the name, then an ECMA array of numbers; where the first number's 8 bytes sit. */
function onMetaData(fields: [string, number][]): { body: Buffer; durationOffset: number } {
  const parts: Buffer[] = [amfString('onMetaData')];
  const count = Buffer.alloc(5);
  count[0] = AMF_ECMA_ARRAY;
  count.writeUInt32BE(fields.length, 1);
  parts.push(count);
  let durationOffset = -1;
  let at = parts[0].length + count.length;
  for (const [k, v] of fields) {
    const key = Buffer.alloc(2 + Buffer.byteLength(k));
    key.writeUInt16BE(Buffer.byteLength(k));
    key.write(k, 2);
    const num = Buffer.alloc(9);
    num[0] = AMF_NUMBER;
    num.writeDoubleBE(v, 1);
    if (durationOffset < 0) durationOffset = at + key.length + 1;
    parts.push(key, num);
    at += key.length + num.length;
  }
  parts.push(Buffer.from([0, 0, AMF_OBJECT_END]));
  return { body: Buffer.concat(parts), durationOffset };
}

/** Fields of the publisher's onMetaData a file's would contradict: the file's own duration and size. */
const FILE_FIELDS = new Set(['duration', 'filesize']);

/**
 * The publisher's onMetaData as the file's: its fields less FILE_FIELDS, with ours first (the
 * duration first of all, where end() patches it). Null when it is not an onMetaData the AMF0
 * reader takes whole (then the file gets only ours).
 */
function publisherMeta(p: MediaPacket | null, ours: [string, number][]): { body: Buffer; durationOffset: number } | null {
  if (p === null || p.kind !== 'script') return null;
  let props: Record<string, AmfValue>;
  try {
    const [name, value] = decodeAmf0All(p.data);
    if (name !== 'onMetaData') return null;
    if (value instanceof EcmaArray) props = value.props;
    else if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)) props = value;
    else return null;
  } catch (err) {
    if (err instanceof AmfError) return null;
    throw err;
  }
  const merged: Record<string, AmfValue> = Object.fromEntries(ours);
  for (const [k, v] of Object.entries(props)) if (!FILE_FIELDS.has(k) && !(k in merged)) merged[k] = v;
  const body = encodeAmf0('onMetaData', new EcmaArray(merged));
  // 'onMetaData' (3 + 10 bytes), the array's marker and count (5), the key "duration" (2 + 8), the number's marker.
  const durationOffset = 13 + 5 + 10 + 1;
  if (body.toString('latin1', durationOffset - 9, durationOffset - 1) !== 'duration' || body[durationOffset - 1] !== AMF_NUMBER) return null;
  return { body, durationOffset };
}

function amfString(s: string): Buffer {
  const b = Buffer.alloc(3 + Buffer.byteLength(s));
  b[0] = AMF_STRING;
  b.writeUInt16BE(Buffer.byteLength(s), 1);
  b.write(s, 3);
  return b;
}
