/**
 * Fragmented MP4 (ISO/IEC 14496-12, codec boxes from 14496-15 and 14496-14, CMAF brands): an init
 * segment and media segments from tracks and samples. A container only: bytes out, no I/O.
 */
export { Mp4Error } from './box.js';
export { initSegment } from './init.js';
export { mediaSegment } from './fragment.js';
export { type Mp4Run, type Mp4Sample, type Mp4Track, MAX_CONFIG_BYTES, MAX_FRAGMENT_BYTES, MAX_FRAGMENT_SAMPLES, MAX_TRACKS } from './types.js';
export { Mp4Remuxer, VIDEO_TIMESCALE, MAX_PENDING_SAMPLES } from './remux.js';
