/**
 * The CMAF header (ISO/IEC 23000-19 §7.3.2.1): ftyp + moov with one trak per track and
 * mvex/trex, no samples (the sample tables are empty; samples come in movie fragments).
 */
import { box, fullBox, Mp4Error, u16, u32, u8, UNITY_MATRIX, zeros } from './box.js';
import { type Mp4Track, MAX_CONFIG_BYTES, MAX_TRACKS } from './types.js';

/** mvhd's timescale: the movie header carries no duration here, so any value is exact. */
const MOVIE_TIMESCALE = 1000;
/** 'und' in mdhd's packed ISO-639-2/T form (§8.4.2.3): three 5-bit letters, each minus 0x60. */
const LANGUAGE_UND = ((('u'.charCodeAt(0) - 0x60) << 10) | (('n'.charCodeAt(0) - 0x60) << 5) | ('d'.charCodeAt(0) - 0x60));

export function initSegment(tracks: readonly Mp4Track[]): Buffer {
  if (tracks.length === 0 || tracks.length > MAX_TRACKS) throw new Mp4Error(`an init segment holds 1 to ${MAX_TRACKS} tracks, not ${tracks.length}`);
  const ids = new Set<number>();
  for (const t of tracks) {
    checkTrack(t);
    if (ids.has(t.id)) throw new Mp4Error(`track_ID ${t.id} appears twice`);
    ids.add(t.id);
  }
  const nextId = Math.max(...ids) + 1;
  return Buffer.concat([ftyp(tracks), box('moov', mvhd(nextId), ...tracks.map(trak), box('mvex', ...tracks.map(trex)))]);
}

function checkTrack(t: Mp4Track): void {
  if (!Number.isInteger(t.id) || t.id < 1 || t.id > 0xffffffff) throw new Mp4Error(`track_ID ${t.id} is not in 1..2^32-1`);
  if (!Number.isInteger(t.timescale) || t.timescale < 1 || t.timescale > 0xffffffff) throw new Mp4Error(`timescale ${t.timescale} is not in 1..2^32-1`);
  if (t.codec === 'mp3' ? t.config.length !== 0 : t.config.length === 0 || t.config.length > MAX_CONFIG_BYTES) throw new Mp4Error(`codec configuration of ${t.config.length} bytes (1..${MAX_CONFIG_BYTES}; none for MP3)`);
  if ((t.kind === 'audio') !== (t.codec === 'aac' || t.codec === 'mp3')) throw new Mp4Error(`codec ${t.codec} is not a ${t.kind} codec`);
  if (t.codec === 'mp3' && !MP3_RATES.has(t.timescale)) throw new Mp4Error(`MP3 timescale ${t.timescale} is not an MPEG audio sample rate`);
}

/** The MPEG-1, 2 and 2.5 audio sample rates: an MP3 track's timescale is its rate. */
const MP3_RATES = new Set([48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000]);

/**
 * Brands: 'cmfc' (CMAF; not with MP3, which no CMAF media profile of ISO/IEC 23000-19 names), 'iso6'
 * (the boxes used here), 'av01' when AV1 is carried (AV1-ISOBMFF §2.1).
 */
function ftyp(tracks: readonly Mp4Track[]): Buffer {
  const brands = tracks.some((t) => t.codec === 'mp3') ? ['iso6', 'isom', 'mp41'] : ['iso6', 'cmfc', 'isom', 'mp41'];
  if (tracks.some((t) => t.codec === 'av1')) brands.push('av01');
  return box('ftyp', Buffer.from('iso6', 'latin1'), u32(0), ...brands.map((b) => Buffer.from(b, 'latin1')));
}

function mvhd(nextTrackId: number): Buffer {
  // v0: creation, modification, timescale, duration; rate 1.0, volume 1.0, reserved, matrix, pre_defined.
  return fullBox('mvhd', 0, 0, u32(0, 0, MOVIE_TIMESCALE, 0, 0x00010000), u16(0x0100), zeros(10), UNITY_MATRIX, zeros(24), u32(nextTrackId));
}

function trak(t: Mp4Track): Buffer {
  const video = t.kind === 'video';
  // tkhd flags 3: track_enabled | track_in_movie (§8.3.2).
  const tkhd = fullBox('tkhd', 0, 3, u32(0, 0, t.id, 0, 0), zeros(8), u16(0, 0, video ? 0 : 0x0100, 0), UNITY_MATRIX, u32(dimension(t.width) * 0x10000, dimension(t.height) * 0x10000));
  const mdhd = fullBox('mdhd', 0, 0, u32(0, 0, t.timescale, 0), u16(LANGUAGE_UND, 0));
  const handler = video ? 'vide' : 'soun';
  const hdlr = fullBox('hdlr', 0, 0, u32(0), Buffer.from(handler, 'latin1'), zeros(12), Buffer.from(video ? 'VideoHandler\0' : 'SoundHandler\0', 'latin1'));
  const header = video ? fullBox('vmhd', 0, 1, zeros(8)) : fullBox('smhd', 0, 0, zeros(4));
  const dinf = box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1)));
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), video ? visualEntry(t) : audioEntry(t)),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0, 0)),
    fullBox('stco', 0, 0, u32(0)),
  );
  return box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', header, dinf, stbl)));
}

function dimension(v: number | undefined): number {
  return v !== undefined && Number.isInteger(v) && v > 0 && v <= 0xffff ? v : 0;
}

/** VisualSampleEntry (§12.1.3) with the codec's configuration box: avc1/avcC (14496-15 §5.4), hvc1/hvcC (§8.4), av01/av1C. */
function visualEntry(t: Mp4Track): Buffer {
  const [entry, config] = t.codec === 'avc' ? ['avc1', 'avcC'] : t.codec === 'hevc' ? ['hvc1', 'hvcC'] : ['av01', 'av1C'];
  return box(
    entry,
    zeros(6), u16(1), // reserved, data_reference_index
    zeros(16), // pre_defined, reserved, pre_defined[3]
    u16(dimension(t.width), dimension(t.height)),
    u32(0x00480000, 0x00480000, 0), // 72 dpi, reserved
    u16(1), // frame_count
    zeros(32), // compressorname
    u16(0x0018, 0xffff), // depth, pre_defined = -1
    box(config, t.config),
  );
}

/** AudioSampleEntry mp4a (§12.2.3) with esds (ISO/IEC 14496-14 §5.6), for AAC and MP3 alike. */
function audioEntry(t: Mp4Track): Buffer {
  const rate = t.sampleRate ?? t.timescale;
  return box(
    'mp4a',
    zeros(6), u16(1),
    zeros(8),
    u16(t.channels && t.channels > 0 && t.channels < 0x10000 ? t.channels : 2, 16), // channelcount, samplesize
    zeros(4),
    u32(rate <= 0xffff ? rate * 0x10000 : 0), // 16.16; rates above 65535 live in the AudioSpecificConfig only
    esds(t),
  );
}

/**
 * ES_Descriptor → DecoderConfigDescriptor (objectTypeIndication, streamType AudioStream 0x05 with
 * the reserved bit) → DecoderSpecificInfo, then SLConfig predefined 2 (the value 14496-14 fixes for files).
 * AAC: MPEG-4 Audio (0x40) with its AudioSpecificConfig. MP3: 0x6B (11172-3, the MPEG-1 rates) or
 * 0x69 (13818-3, the lower ones; 2.5's too, as ffmpeg's movenc writes them), and no
 * DecoderSpecificInfo, since every frame's header configures the decoder.
 */
function esds(t: Mp4Track): Buffer {
  const mp3 = t.codec === 'mp3';
  const objectType = !mp3 ? 0x40 : t.timescale > 24000 ? 0x6b : 0x69;
  const dsi = mp3 ? Buffer.alloc(0) : descriptor(0x05, t.config);
  const dcd = descriptor(0x04, Buffer.concat([u8(objectType, (0x05 << 2) | 1), u8(0, 0, 0), u32(0, 0), dsi]));
  const es = descriptor(0x03, Buffer.concat([u16(t.id & 0xffff), u8(0), dcd, descriptor(0x06, u8(0x02))]));
  return fullBox('esds', 0, 0, es);
}

/** An MPEG-4 descriptor (14496-1 §8.3.3): tag, then the size in 7-bit groups, high bit = more follows. */
function descriptor(tag: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    len.unshift(n & 0x7f);
    n >>>= 7;
  } while (n > 0);
  for (let i = 0; i < len.length - 1; i++) len[i] |= 0x80;
  return Buffer.concat([u8(tag, ...len), body]);
}

/** TrackExtendsBox (§8.8.3): sample description 1; the fragments carry every other default themselves. */
function trex(t: Mp4Track): Buffer {
  return fullBox('trex', 0, 0, u32(t.id, 1, 0, 0, 0));
}
