import { childBoxes } from '../../media/mp4/box.js';
import { SEGMENT_TARGET_MS, type FileReader, type IndexLimits, type VodIndex } from './types.js';

/** tfhd flags (ISO/IEC 14496-12 §8.8.7.1). */
const TFHD_BASE_DATA_OFFSET = 0x01;
const TFHD_SAMPLE_DESCRIPTION = 0x02;
const TFHD_DEFAULT_DURATION = 0x08;
const TFHD_DEFAULT_SIZE = 0x10;
const TFHD_DEFAULT_FLAGS = 0x20;
/** trun flags (§8.8.8.1). */
const TRUN_DATA_OFFSET = 0x01;
const TRUN_FIRST_FLAGS = 0x04;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_CTO = 0x800;
/** sample_is_non_sync_sample (§8.8.3.1). */
const NON_SYNC = 0x00010000;

interface Track { id: number; timescale: number; video: boolean; defaultDuration: number; defaultFlags: number }
interface Fragment { offset: number; length: number; startMs: number; durationMs: number; sync: boolean }

/**
 * Indexes a fragmented MP4 recording by its top-level boxes: ftyp+moov become the playlist's
 * EXT-X-MAP, and runs of moof+mdat pairs its segments (byte ranges of the file itself, no
 * re-muxing), each run starting at a fragment whose first video sample is a sync sample. Only
 * moov and moof are read whole (bounded); mdat is skipped by its size. A fragment whose mdat
 * is not all on disk yet (a recording in progress, or cut short by a crash) is not listed.
 */
export class Mp4Indexer {
  private pos = 0;
  private items = 0;
  private stopped = false;
  private ref: Track | null = null;
  private group: Fragment[] = [];
  readonly index: VodIndex = { container: 'mp4', init: null, segments: [], headers: [], capped: false };

  constructor(private readonly limits: IndexLimits) {}

  async update(file: FileReader, finished: boolean): Promise<VodIndex> {
    while (!this.stopped && this.pos + 8 <= file.size) {
      const head = await file.read(this.pos, Math.min(16, file.size - this.pos));
      let size = head.readUInt32BE(0);
      const type = head.toString('latin1', 4, 8);
      if (size === 1 && head.length >= 16) size = Number(head.readBigUInt64BE(8));
      if (size < 8 || !Number.isSafeInteger(size)) {
        this.stop(false);
        break;
      }
      if (this.pos + size > file.size) break;
      if (this.items >= this.limits.maxItems) {
        this.stop(true);
        break;
      }
      if (type === 'moov' || type === 'moof') {
        if (size > this.limits.maxBoxBytes) {
          this.stop(true);
          break;
        }
        const body = await file.read(this.pos, size);
        if (type === 'moov') {
          this.moov(body);
          this.index.init = { offset: 0, length: this.pos + size };
        } else {
          const mdat = await this.mdatAfter(file, this.pos + size);
          if (mdat === 0) break;
          if (!this.fragment(body, this.pos, size + mdat)) {
            this.stop(true);
            break;
          }
          size += mdat;
        }
      }
      // Counted once each, when passed: a growing file's last box is looked at again on the next update.
      this.items++;
      this.pos += size;
    }
    if (finished && this.group.length > 0) this.flush();
    return this.index;
  }

  private stop(capped: boolean): void {
    this.stopped = true;
    this.index.capped = capped;
  }

  /** The size of the mdat right after a moof, or 0 while it is not all on disk. */
  private async mdatAfter(file: FileReader, at: number): Promise<number> {
    if (at + 8 > file.size) return 0;
    const h = await file.read(at, Math.min(16, file.size - at));
    let size = h.readUInt32BE(0);
    if (h.toString('latin1', 4, 8) !== 'mdat') return 0;
    if (size === 1 && h.length >= 16) size = Number(h.readBigUInt64BE(8));
    return size >= 8 && at + size <= file.size ? size : 0;
  }

  /** trak → tkhd's id, mdhd's timescale, hdlr's type; mvex/trex → the fragments' defaults. */
  private moov(b: Buffer): void {
    const tracks: Track[] = [];
    for (const [t, s, e] of childBoxes(b, 8, b.length)) {
      if (t === 'trak') {
        const tr: Track = { id: 0, timescale: 1000, video: false, defaultDuration: 0, defaultFlags: 0 };
        for (const [c, cs, ce] of childBoxes(b, s + 8, e)) {
          if (c === 'tkhd' && ce - cs >= 24) tr.id = b.readUInt32BE(cs + (b[cs + 8] === 1 ? 28 : 20));
          if (c !== 'mdia') continue;
          for (const [m, ms, me] of childBoxes(b, cs + 8, ce)) {
            if (m === 'mdhd' && me - ms >= 32) tr.timescale = b.readUInt32BE(ms + (b[ms + 8] === 1 ? 28 : 20)) || 1000;
            if (m === 'hdlr' && me - ms >= 20) tr.video = b.toString('latin1', ms + 16, ms + 20) === 'vide';
          }
        }
        tracks.push(tr);
      }
      if (t !== 'mvex') continue;
      for (const [c, cs, ce] of childBoxes(b, s + 8, e)) {
        if (c !== 'trex' || ce - cs < 32) continue;
        const tr = tracks.find((x) => x.id === b.readUInt32BE(cs + 12));
        if (tr) {
          tr.defaultDuration = b.readUInt32BE(cs + 20);
          tr.defaultFlags = b.readUInt32BE(cs + 28);
        }
      }
    }
    this.ref = tracks.find((t) => t.video) ?? tracks[0] ?? null;
  }

  /** One moof (+ its mdat): its reference track's start, duration and first sample's sync flag. False when the list is full. */
  private fragment(b: Buffer, offset: number, length: number): boolean {
    const ref = this.ref;
    if (ref === null) return true;
    for (const [t, s, e] of childBoxes(b, 8, b.length)) {
      if (t !== 'traf') continue;
      const f = trafTiming(b, s + 8, e, ref);
      if (f === null) continue;
      const frag: Fragment = { offset, length, startMs: (f.dts * 1000) / ref.timescale, durationMs: (f.duration * 1000) / ref.timescale, sync: !ref.video || f.sync };
      const g = this.group;
      const span = g.length === 0 ? 0 : frag.startMs - g[0].startMs;
      const bytes = g.length === 0 ? 0 : frag.offset - g[0].offset;
      if (g.length > 0 && ((frag.sync && span >= SEGMENT_TARGET_MS) || bytes >= this.limits.maxSegmentBytes)) {
        if (this.index.segments.length >= this.limits.maxSegments) return false;
        this.flush();
      }
      this.group.push(frag);
      return true;
    }
    return true;
  }

  private flush(): void {
    const g = this.group;
    const first = g[0];
    const last = g[g.length - 1];
    this.index.segments.push({ offset: first.offset, length: last.offset + last.length - first.offset, startMs: first.startMs, durationMs: last.startMs + last.durationMs - first.startMs });
    this.group = [];
  }
}

/** A traf of the reference track: tfdt's time, the sum of trun durations, the first sample's sync flag. */
function trafTiming(b: Buffer, from: number, to: number, ref: Track): { dts: number; duration: number; sync: boolean } | null {
  let id = -1;
  let defDuration = ref.defaultDuration;
  let defFlags = ref.defaultFlags;
  let dts = 0;
  let duration = 0;
  let firstFlags: number | null = null;
  for (const [t, s, e] of childBoxes(b, from, to)) {
    const flags = e - s >= 12 ? b.readUInt32BE(s + 8) & 0xffffff : 0;
    if (t === 'tfhd' && e - s >= 16) {
      id = b.readUInt32BE(s + 12);
      if (id !== ref.id) return null;
      let at = s + 16;
      if (flags & TFHD_BASE_DATA_OFFSET) at += 8;
      if (flags & TFHD_SAMPLE_DESCRIPTION) at += 4;
      if (flags & TFHD_DEFAULT_DURATION && at + 4 <= e) defDuration = b.readUInt32BE(at);
      if (flags & TFHD_DEFAULT_DURATION) at += 4;
      if (flags & TFHD_DEFAULT_SIZE) at += 4;
      if (flags & TFHD_DEFAULT_FLAGS && at + 4 <= e) defFlags = b.readUInt32BE(at);
    } else if (t === 'tfdt' && e - s >= 16) {
      dts = b[s + 8] === 1 && e - s >= 20 ? Number(b.readBigUInt64BE(s + 12)) : b.readUInt32BE(s + 12);
    } else if (t === 'trun' && e - s >= 16) {
      const n = b.readUInt32BE(s + 12);
      let at = s + 16 + (flags & TRUN_DATA_OFFSET ? 4 : 0);
      if (flags & TRUN_FIRST_FLAGS) firstFlags ??= b.readUInt32BE(at);
      if (flags & TRUN_FIRST_FLAGS) at += 4;
      const per = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO].filter((f) => flags & f).length * 4;
      // The table must lie inside the trun: a count that claims more is a damaged box (read no further).
      if (at + n * per > e) return null;
      for (let i = 0; i < n; i++, at += per) {
        duration += flags & TRUN_DURATION ? b.readUInt32BE(at) : defDuration;
        if (i === 0 && flags & TRUN_FLAGS) firstFlags ??= b.readUInt32BE(at + (flags & TRUN_DURATION ? 4 : 0) + (flags & TRUN_SIZE ? 4 : 0));
      }
    }
  }
  if (id !== ref.id) return null;
  return { dts, duration, sync: ((firstFlags ?? defFlags) & NON_SYNC) === 0 };
}
