/**
 * A CMAF fragment (ISO/IEC 23000-19 §7.3.2.2): moof (mfhd; per track traf with tfhd, tfdt, trun)
 * followed by one mdat holding every run's samples in order.
 */
import { box, fullBox, Mp4Error, u32, u64 } from './box.js';
import { type Mp4Run, type Mp4Sample, MAX_FRAGMENT_BYTES, MAX_FRAGMENT_SAMPLES } from './types.js';

/** tfhd flag: offsets count from the moof's first byte (§8.8.7.1; CMAF requires it). */
const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
/** trun flags (§8.8.8.1): data-offset, then per sample duration, size, flags, composition offset. */
const TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;
/** sample_flags (§8.8.3.1): a sync sample depends on no other (sample_depends_on = 2)… */
const SYNC_SAMPLE_FLAGS = 0x02000000;
/** …other samples depend on others (1) and are not sync samples (sample_is_non_sync_sample). */
const NON_SYNC_SAMPLE_FLAGS = 0x01010000;
const MFHD_BYTES = 16;
const TFHD_BYTES = 16;
const TFDT_BYTES = 20;
const TRUN_HEAD_BYTES = 20;
const TRUN_SAMPLE_BYTES = 16;
const MDAT_HEAD_BYTES = 8;

export function mediaSegment(sequence: number, runs: readonly Mp4Run[]): Buffer {
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > 0xffffffff) throw new Mp4Error(`fragment sequence ${sequence} is not a 32-bit number`);
  let samples = 0;
  let mdatBytes = 0;
  for (const r of runs) {
    samples += r.samples.length;
    if (samples > MAX_FRAGMENT_SAMPLES) throw new Mp4Error(`more than ${MAX_FRAGMENT_SAMPLES} samples in one fragment`);
    for (const s of r.samples) {
      checkSample(s);
      mdatBytes += s.data.length;
    }
    if (mdatBytes > MAX_FRAGMENT_BYTES) throw new Mp4Error(`more than ${MAX_FRAGMENT_BYTES} bytes of samples in one fragment`);
  }
  const filled = runs.filter((r) => r.samples.length > 0);
  if (filled.length === 0) throw new Mp4Error('a fragment needs at least one sample');
  let moofBytes = 8 + MFHD_BYTES;
  for (const r of filled) moofBytes += 8 + TFHD_BYTES + TFDT_BYTES + TRUN_HEAD_BYTES + TRUN_SAMPLE_BYTES * r.samples.length;
  // Each trun's data_offset points, from the moof's start, at its samples inside the one mdat.
  let offset = moofBytes + MDAT_HEAD_BYTES;
  const trafs: Buffer[] = [];
  for (const r of filled) {
    trafs.push(traf(r, offset));
    for (const s of r.samples) offset += s.data.length;
  }
  const moof = box('moof', fullBox('mfhd', 0, 0, u32(sequence)), ...trafs);
  if (moof.length !== moofBytes) throw new Mp4Error(`moof is ${moof.length} bytes, expected ${moofBytes}`);
  const data: Buffer[] = [];
  for (const r of filled) for (const s of r.samples) data.push(s.data);
  return Buffer.concat([moof, box('mdat', ...data)]);
}

function checkSample(s: Mp4Sample): void {
  if (!Number.isSafeInteger(s.dts) || s.dts < 0) throw new Mp4Error(`sample dts ${s.dts} is not a non-negative integer`);
  if (!Number.isInteger(s.duration) || s.duration < 0 || s.duration > 0xffffffff) throw new Mp4Error(`sample duration ${s.duration} is not a 32-bit number`);
  if (!Number.isInteger(s.cts) || s.cts < -0x80000000 || s.cts > 0x7fffffff) throw new Mp4Error(`composition offset ${s.cts} is not a signed 32-bit number`);
}

function traf(r: Mp4Run, dataOffset: number): Buffer {
  const n = r.samples.length;
  const table = Buffer.allocUnsafe(TRUN_SAMPLE_BYTES * n);
  let at = 0;
  for (const s of r.samples) {
    table.writeUInt32BE(s.duration, at);
    table.writeUInt32BE(s.data.length, at + 4);
    table.writeUInt32BE(s.key || r.track.kind === 'audio' ? SYNC_SAMPLE_FLAGS : NON_SYNC_SAMPLE_FLAGS, at + 8);
    table.writeInt32BE(s.cts, at + 12);
    at += TRUN_SAMPLE_BYTES;
  }
  return box(
    'traf',
    fullBox('tfhd', 0, TFHD_DEFAULT_BASE_IS_MOOF, u32(r.track.id)),
    fullBox('tfdt', 1, 0, u64(r.samples[0].dts)),
    // trun v1: signed composition offsets (§8.8.8.2), so B-frames need no edit list.
    fullBox('trun', 1, TRUN_FLAGS, u32(n, dataOffset), table),
  );
}
